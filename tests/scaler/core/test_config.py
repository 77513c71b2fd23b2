"""Table tests of the metadata contract: every bad input names its key and what is allowed."""

from __future__ import annotations

import pytest

from scaler.core.config import (
    Backend,
    ConfigError,
    LatencyMetric,
    TritonBackend,
    parse_metadata,
    validate_namespace,
)

BASE = {"backend": "vllm", "deployment": "llama-8b", "targetQueuePerReplica": "8"}


@pytest.mark.parametrize(
    ("extra", "check"),
    [
        ({}, lambda c: c.backend == Backend.VLLM and c.target_queue_per_replica == 8.0),
        ({"backend": "triton"}, lambda c: c.triton_backend == TritonBackend.AUTO),
        (
            {"backend": "triton", "tritonBackend": "tensorrtllm"},
            lambda c: c.triton_backend == TritonBackend.TENSORRTLLM,
        ),
        ({"backend": "triton", "tritonBackend": "vllm"}, lambda c: c.triton_backend == TritonBackend.VLLM),
        (
            {"backend": "triton", "tritonBackend": "generic"},
            lambda c: c.triton_backend == TritonBackend.GENERIC,
        ),
        (
            {"model": "meta-llama/Llama-3.1-8B-Instruct"},
            lambda c: c.model == "meta-llama/Llama-3.1-8B-Instruct",
        ),
        (
            {"serverAddress": "http://prometheus.monitoring:9090/"},
            lambda c: c.server_address == "http://prometheus.monitoring:9090",
        ),
        (
            {"targetTokensPerSecondPerReplica": "1500.5"},
            lambda c: c.target_tokens_per_s_per_replica == 1500.5,
        ),
        ({"targetGpuUtilization": "100"}, lambda c: c.target_gpu_util_percent == 100.0),
        (
            {"latencySloSeconds": "2"},
            lambda c: (
                c.latency_slo_s == 2.0
                and c.latency_quantile == 0.99
                and c.latency_metric == LatencyMetric.E2E
            ),
        ),
        (
            {"latencySloSeconds": "0.5", "latencyQuantile": "0.9", "latencyMetric": "ttft"},
            lambda c: c.latency_quantile == 0.9 and c.latency_metric == LatencyMetric.TTFT,
        ),
        # Keys KEDA itself reads are passed along verbatim; they must not be refused.
        ({"scalerAddress": "scaler.keda:9090", "enableTLS": "true", "unsafeSsl": "false"}, lambda c: True),
        ({"deployment": "llama.v2-8b"}, lambda c: c.deployment == "llama.v2-8b"),
        ({"targetQueuePerReplica": " 4 "}, lambda c: c.target_queue_per_replica == 4.0),
    ],
)
def test_good_metadata(extra: dict[str, str], check: object) -> None:
    config = parse_metadata({**BASE, **extra})
    assert callable(check) and check(config)


@pytest.mark.parametrize(
    ("metadata", "key", "fragment"),
    [
        ({"deployment": "x", "targetQueuePerReplica": "1"}, "backend", "required"),
        ({**BASE, "backend": "tgi"}, "backend", "'vllm' or 'triton'"),
        (
            {**BASE, "backend": "triton", "tritonBackend": "trtllm"},
            "tritonBackend",
            "'auto', 'tensorrtllm', 'vllm' or 'generic'",
        ),
        ({**BASE, "tritonBackend": "tensorrtllm"}, "tritonBackend", "only allowed with backend: triton"),
        ({"backend": "vllm", "targetQueuePerReplica": "1"}, "deployment", "required"),
        ({**BASE, "deployment": "Llama_8B"}, "deployment", "RFC 1123"),
        ({**BASE, "deployment": 'x"}) or vector(1'}, "deployment", "RFC 1123"),
        (
            {"backend": "vllm", "deployment": "x"},
            "targetQueuePerReplica/targetTokensPerSecondPerReplica/targetGpuUtilization/latencySloSeconds",
            "at least one",
        ),
        ({**BASE, "targetQueuePerReplica": "0"}, "targetQueuePerReplica", "> 0"),
        ({**BASE, "targetQueuePerReplica": "-3"}, "targetQueuePerReplica", "> 0"),
        ({**BASE, "targetQueuePerReplica": "nan"}, "targetQueuePerReplica", "finite"),
        ({**BASE, "targetQueuePerReplica": "inf"}, "targetQueuePerReplica", "finite"),
        ({**BASE, "targetQueuePerReplica": "lots"}, "targetQueuePerReplica", "finite number"),
        ({**BASE, "targetGpuUtilization": "120"}, "targetGpuUtilization", "(0, 100]"),
        ({**BASE, "latencySloSeconds": "2", "latencyQuantile": "1"}, "latencyQuantile", "(0, 1)"),
        (
            {**BASE, "latencyQuantile": "0.9"},
            "latencyQuantile",
            "only allowed together with latencySloSeconds",
        ),
        ({**BASE, "latencySloSeconds": "2", "latencyMetric": "tpot"}, "latencyMetric", "'e2e' or 'ttft'"),
        ({**BASE, "serverAddress": "ftp://prom:9090"}, "serverAddress", "http:// or https://"),
        ({**BASE, "serverAddress": "http://prom:9090/api?x=1"}, "serverAddress", "no query"),
        ({**BASE, "serverAddress": "http://prom:99999"}, "serverAddress", "port"),
        ({**BASE, "model": 'm"} or up{'}, "model", "letters, digits"),
        ({**BASE, "model": "x" * 300}, "model", "1-256"),
        ({**BASE, "targetQueue": "8"}, "targetQueue", "not a known key; allowed keys:"),
        ({**BASE, "x": "y" * 5000}, "x", "at most 2048"),
        ({**{f"k{i}": "v" for i in range(80)}}, "scalerMetadata", "at most 64"),
    ],
)
def test_bad_metadata_names_the_key(metadata: dict[str, str], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_metadata(metadata)
    assert info.value.key == key
    assert fragment in info.value.message, info.value.message
    assert str(info.value).startswith(f"metadata key '{key}':")


@pytest.mark.parametrize("namespace", ["", "Default", "a" * 64, 'ns"}', "ns|other", "-ns"])
def test_bad_namespace(namespace: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_namespace(namespace)
    assert info.value.key == "namespace"


def test_config_is_frozen() -> None:
    config = parse_metadata(BASE)
    with pytest.raises(ValueError, match="frozen"):
        config.target_queue_per_replica = 2.0  # type: ignore[misc]
