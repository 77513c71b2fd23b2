"""Triton serving LLMs, as KEDA sees it: a real Prometheus on loopback scraping the test exporter's Triton
pods (TensorRT-LLM in both label-value generations, the vLLM backend, generic), the scaler over real gRPC,
a client from KEDA's upstream proto, and the refresh's signals read by ``PrometheusSource``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.core.config import parse_metadata
from scaler.core.decision import decide
from scaler.core.target import Target
from scaler.describe import describe
from scaler.sources.prometheus import PrometheusSource
from tests.harness.exporter import FakeFleet, FakePod
from tests.harness.prometheus import PrometheusProcess
from tests.harness.scaler import loopback_scaler

NS = "tritest"
RATE_WINDOW = "10s"
TRT = {
    "backend": "triton",
    "targetQueuePerReplica": "8",
    "scaleToZero": "false",
}
SUFFIXES = ("bbbbb", "ccccc", "ddddd")


def _trt_pods(deployment: str, release: str, waiting: float, running: float, **kw: Any) -> list[FakePod]:
    return [
        FakePod(
            NS,
            f"{deployment}-7c9d8b6f5-{suffix}",
            backend="triton",
            model="tensorrt_llm",
            triton_backend="tensorrtllm",
            trtllm_release=release,
            waiting=waiting,
            running=running,
            **kw,
        )
        for suffix in SUFFIXES
    ]


@pytest.fixture(scope="module")
def pods(fleet: FakeFleet, prometheus: PrometheusProcess) -> Iterator[list[FakePod]]:
    busy = {
        "requests_per_s": 2.0,
        "prompt_tokens_per_s": 2000.0,
        "generation_tokens_per_s": 400.0,
        # 50 executor iterations/s (a 20 ms step), 2000 / 50 = 40 context tokens per iteration
        "iterations_per_s": 50.0,
    }
    added = [
        # 3 pods, each 40 waiting and 24 running in the executor, Triton's pending count 0
        *_trt_pods("trt", "new", 40, 24, kv_cache_fraction=0.5, **busy),
        # the same load from a release without request_type="waiting" and kv "fraction"
        *_trt_pods("trtold", "old", 40, 24, kv_cache_fraction=0.5, **busy),
        *_trt_pods("trtidle", "new", 0, 0),
        *_trt_pods("trtidleold", "old", 0, 0),
        # nearly full KV cache, a light queue
        *_trt_pods("trtkv", "new", 0, 2, kv_cache_fraction=0.95),
        FakePod(
            NS,
            "tvllm-7c9d8b6f5-bbbbb",
            backend="triton",
            model="vllm_model",
            triton_backend="vllm",
            requests_per_s=4.0,
            prompt_tokens_per_s=4000.0,
            generation_tokens_per_s=800.0,
            e2e_latency_s=3.0,
        ),
        FakePod(NS, "tgen-7c9d8b6f5-bbbbb", backend="triton", model="bert", waiting=9, requests_per_s=50),
    ]
    for pod in added:
        fleet.add(pod)
    prometheus.wait_until(
        f'count(count_over_time(nv_inference_request_success{{namespace="{NS}"}}[{RATE_WINDOW}]) >= 10) '
        f"== {len(added)}",
        lambda r: bool(r),
    )
    yield added
    for pod in added:
        fleet.remove(pod.namespace, pod.name)


@pytest.fixture(scope="module")
def stub(
    pods: list[FakePod], prometheus: PrometheusProcess, keda_pb: tuple[ModuleType, ModuleType]
) -> Iterator[Any]:
    with loopback_scaler(prometheus.url, RATE_WINDOW) as s, grpc.insecure_channel(s.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield keda_pb[1].ExternalScalerStub(ch)


def _replicas(stub: Any, keda_pb: tuple[ModuleType, ModuleType], name: str, meta: dict[str, str]) -> int:
    ref = keda_pb[0].ScaledObjectRef(name=f"{name}-so", namespace=NS, scalerMetadata=meta)
    req = keda_pb[0].GetMetricsRequest(scaledObjectRef=ref, metricName=f"llm-{meta['deployment']}")
    return int(stub.GetMetrics(req, timeout=10).metricValues[0].metricValue)


# (deployment, tritonBackend, expected replicas): queue (40 + 24) x 3 = 192 at 8 per replica is 24, in
# both generations (the older one's "active" is 64: the executor holds the waiting requests too). Read
# as generic Triton (pending 0) it is the bug: no queue at all.
LOADED = [
    ("trt", "auto"),
    ("trt", "tensorrtllm"),
    ("trtold", "auto"),
    ("trtold", "tensorrtllm"),
]


@pytest.mark.parametrize(("deployment", "shape"), LOADED)
def test_a_loaded_tensorrt_llm_fleet_scales_up(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType], deployment: str, shape: str
) -> None:
    meta = {**TRT, "deployment": deployment, "tritonBackend": shape}
    assert _replicas(stub, keda_pb, f"{deployment}-{shape}", meta) >= 24


@pytest.mark.parametrize("deployment", ["trtidle", "trtidleold"])
def test_an_idle_tensorrt_llm_fleet_does_not_scale_up(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType], deployment: str
) -> None:
    assert _replicas(stub, keda_pb, deployment, {**TRT, "deployment": deployment}) <= 3


def test_a_nearly_full_kv_cache_holds_the_fleet(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    # queue 3 x 2 = 6 at 8 per replica asks 1; the KV cache 95 % full holds the 3 replicas
    assert _replicas(stub, keda_pb, "trtkv", {**TRT, "deployment": "trtkv"}) == 3


def test_generic_triton_reads_the_pending_count(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    meta = {**TRT, "deployment": "tgen", "targetQueuePerReplica": "2"}
    assert _replicas(stub, keda_pb, "tgen", meta) == 5  # 9 pending / 2


def _observe(prometheus: PrometheusProcess, deployment: str, **extra: str) -> Any:
    meta = {**TRT, "deployment": deployment, **extra}
    target = Target(NS, f"{deployment}-so", parse_metadata(meta))
    src = PrometheusSource(prometheus.url, rate_window=RATE_WINDOW, history_step_s=1.0)
    obs = src.collect([target])[(NS, target.name, deployment)]
    return obs, target


# (deployment, shape, running, waiting, queue, KV fraction, tokens/s, waiting's source says). The older
# release has no token-length histograms: per pod 40 context tokens x 50 iterations/s = 2000 prompt and 24
# decoding requests x 50 = 1200 generated tokens/s, x 3 pods = 9600.
SIGNALS = [
    ("trt", "Triton TensorRT-LLM", 72.0, 120.0, 192.0, 0.5, 7200.0, 'request_type="waiting"'),
    (
        "trtold",
        "Triton TensorRT-LLM",
        72.0,
        120.0,
        192.0,
        0.5,
        9600.0,
        "active - scheduled, running = scheduled",
    ),
    ("tvllm", "Triton vLLM backend", None, None, 0.0, None, 4800.0, None),
    ("tgen", "Triton (generic backend)", None, None, 9.0, None, 50.0, None),
]


@pytest.mark.parametrize(
    ("deployment", "shape", "running", "waiting", "queue", "kv", "tokens", "says"), SIGNALS
)
def test_auto_reads_each_shape_from_its_own_metrics(
    pods: list[FakePod],
    prometheus: PrometheusProcess,
    deployment: str,
    shape: str,
    running: float | None,
    waiting: float | None,
    queue: float,
    kv: float | None,
    tokens: float | None,
    says: str | None,
) -> None:
    obs, target = _observe(prometheus, deployment)
    s = obs.signals
    assert s.source_notes["shape"].startswith(shape), s.source_notes
    assert "tritonBackend auto" in s.source_notes["shape"]
    assert (s.running_requests, s.waiting_requests, s.queue_requests) == (running, waiting, queue)
    assert s.kv_cache_fraction == (pytest.approx(kv) if kv is not None else None)
    assert s.tokens_per_s == (pytest.approx(tokens, rel=0.1) if tokens is not None else None)
    if says is not None:
        assert says in s.source_notes["source:waiting"]
    text = describe(decide(obs.signals, obs.state, target.config, 0.0))
    assert shape in text and "source:queue" in text


def test_explain_names_the_shape_set_by_metadata_and_each_source(
    pods: list[FakePod], prometheus: PrometheusProcess
) -> None:
    obs, target = _observe(
        prometheus, "trt", tritonBackend="tensorrtllm", latencySloSeconds="2", latencyMetric="ttft"
    )
    text = describe(decide(obs.signals, obs.state, target.config, 0.0))
    assert "set by tritonBackend" in text
    for metric in (
        "nv_trt_llm_request_metrics",
        "nv_trt_llm_kv_cache_block_metrics",
        "nv_llm_input_token_len_sum",
        "nv_inference_first_response_histogram_ms",
    ):
        assert metric in text, text
    assert "first chunk" in text


def test_read_as_generic_the_tensorrt_llm_queue_is_invisible(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    # The measurement: nv_inference_pending_request_count is 0 under this load, so the generic
    # shape sees no queue and does not scale up (it answered 2 before the TensorRT-LLM shape existed).
    meta = {**TRT, "deployment": "trt", "tritonBackend": "generic"}
    assert _replicas(stub, keda_pb, "trt-generic", meta) <= 3


@pytest.mark.parametrize(
    ("deployment", "prompt", "generation", "fallback"),
    [("trt", 6000.0, 1200.0, False), ("trtold", 6000.0, 3600.0, True)],
)
def test_explain_shows_tokens_and_the_step_from_the_iteration_counter(
    pods: list[FakePod],
    prometheus: PrometheusProcess,
    deployment: str,
    prompt: float,
    generation: float,
    fallback: bool,
) -> None:
    # 50 iterations/s per pod: a 20 ms step in both releases. The newer one's tokens are its histograms'
    # (2000 prompt + 400 generated per pod); the older one's are 40 context tokens and 24 decoding requests
    # per iteration x 50 iterations/s (2000 + 1200 per pod), x 3 pods.
    obs, target = _observe(prometheus, deployment, targetTokensPerSecondPerReplica="1000")
    s = obs.signals
    assert s.step_s == pytest.approx(0.020, rel=0.1)
    assert s.prompt_tokens_per_s == pytest.approx(prompt, rel=0.1)
    assert s.generation_tokens_per_s == pytest.approx(generation, rel=0.1)
    text = describe(decide(s, obs.state, target.config, 0.0))
    # "  tokens   9.6e+03 /s     1e+03 /s per replica     asks 10   ok": 9600 tokens/s at 1000 per replica
    tokens_line = next(line for line in text.splitlines() if line.strip().startswith("tokens "))
    assert float(tokens_line.split()[1]) == pytest.approx(prompt + generation, rel=0.1), tokens_line
    assert f"asks {math.ceil((prompt + generation) / 1000)} " in tokens_line, tokens_line
    step_line = next(line for line in text.splitlines() if "source:step" in line)
    assert 'nv_trt_llm_general_metrics{general_type="iteration_counter"}' in step_line
    assert re.search(r"\((19|20|21)\.\d ms over 3 pod\(s\)\)", step_line), step_line
    tokens_source = next(line for line in text.splitlines() if "source:tokens" in line)
    assert ("used for 3 pod(s) without nv_llm_input_token_len" in tokens_source) == fallback, tokens_source
    if fallback:
        assert "total_context_tokens" in tokens_source
