"""Table tests of the metadata contract: every bad input names its key and what is allowed, all at once."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Iterator, Mapping

import pytest

from scaler.core import config as config_module
from scaler.core.config import (
    ALLOWED_KEYS,
    MAX_MESSAGE_CHARS,
    TARGETS_KEY,
    Backend,
    ConfigError,
    LatencyMetric,
    Problem,
    TritonBackend,
    parse_metadata,
    validate_namespace,
)
from scaler.core.target import target_from_ref

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
    assert fragment in str(info.value), str(info.value)
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


# -- every problem at once --------------------------------------------------------------------------------

# One bad value per key, and a fragment of what the message says is allowed.
BAD = {
    "backend": ("tgi", "'vllm' or 'triton'"),
    "deployment": ("Llama_8B", "RFC 1123"),
    "serverAddress": ("ftp://prom", "http:// or https://"),
    "model": ('m"} or up{', "letters, digits"),
    "targetQueuePerReplica": ("0", "> 0"),
    "targetGpuUtilization": ("120", "(0, 100]"),
    "coldStartSeconds": ("-5", "(0, 3600]"),
    "predictive": ("yes", "true or false"),
    "minIdleSeconds": ("-1", ">= 0"),
    "targetQueue": ("8", "is not a known key"),
    "colour": ("blue", "is not a known key"),
}


def _keys_named(message: str) -> list[str]:
    """The keys a message names, in order ("metadata key 'a': ...; key 'b': ...")."""
    return re.findall(r"(?:^metadata |; )key '([^']*)': ", message)


def _error(metadata: Mapping[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_metadata(metadata)
    return info.value


def _combinations() -> Iterator[tuple[str, ...]]:
    for size in (2, 3):
        yield from itertools.combinations(BAD, size)


@pytest.mark.parametrize("bad_keys", list(_combinations()), ids="+".join)
def test_every_bad_key_is_named_at_once(bad_keys: tuple[str, ...]) -> None:
    metadata = {**BASE, **{k: BAD[k][0] for k in bad_keys}}
    err = _error(metadata)
    message = str(err)
    assert {p.key for p in err.problems} == set(bad_keys), err.problems
    for key in bad_keys:
        mine = [p.message for p in err.problems if p.key == key]
        assert any(BAD[key][1] in m for m in mine), (key, mine)
    # one readable line, every key named in it, each once, in the order of the metadata table
    assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS
    assert _keys_named(message) == [p.key for p in err.problems]
    table = [k for k in config_module._FIELD_TO_KEY.values() if k in bad_keys]
    unknown = sorted(k for k in bad_keys if k not in ALLOWED_KEYS)
    assert _keys_named(message) == [*table, *unknown]
    if unknown:  # what is allowed, once, after the last unknown key
        assert message.count("allowed keys: ") == 1 and message.endswith(", ".join(ALLOWED_KEYS))


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        # the case: the bad backend and the missing target, not just the second
        (
            {"backend": "foo", "deployment": "llama"},
            [("backend", "'vllm' or 'triton', got 'foo'"), (TARGETS_KEY, "at least one")],
        ),
        (
            {},
            [("backend", "is required"), ("deployment", "is required"), (TARGETS_KEY, "at least one")],
        ),
        # an empty required value is missing (said once), not also a bad value
        (
            {**BASE, "backend": " ", "deployment": ""},
            [("backend", "is required"), ("deployment", "is required")],
        ),
        # two problems with one key are one part of the message, joined with "and"
        (
            {**BASE, "latencyQuantile": "1"},
            [
                ("latencyQuantile", "only allowed together with latencySloSeconds"),
                ("latencyQuantile", "(0, 1)"),
            ],
        ),
        # a value too long to read is named as such, not also as missing or invalid
        (
            {**BASE, "deployment": "d" * 3000, "model": "x" * 300},
            [("deployment", "at most 2048"), ("model", "1-256")],
        ),
        (
            {
                "deployment": "x",
                "targetQueuePerReplica": "lots",
                "latencyMetric": "tpot",
                "activationThreshold": "-1",
            },
            [
                ("backend", "is required"),
                ("targetQueuePerReplica", "finite number"),
                ("latencyMetric", "only allowed together with latencySloSeconds"),
                ("latencyMetric", "'e2e' or 'ttft'"),
                ("activationThreshold", "only allowed together with activationQuery"),
                ("activationThreshold", ">= 0"),
            ],
        ),
    ],
)
def test_problems_and_missing_keys_together(
    metadata: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    err = _error(metadata)
    assert [p.key for p in err.problems] == [key for key, _ in expected], err.problems
    for p, (_, fragment) in zip(err.problems, expected, strict=True):
        assert fragment in p.message, (p, fragment)
    message = str(err)
    assert message.startswith(f"metadata key '{expected[0][0]}': ") and "\n" not in message
    for key, _ in expected:
        assert message.count(f"key '{key}': ") == 1, message


def test_the_message_does_not_depend_on_the_order_of_the_map() -> None:
    metadata = {**BASE, **{k: v for k, (v, _) in BAD.items()}, "latencyQuantile": "2"}
    first = str(_error(metadata))
    rng = random.Random(12)
    for _ in range(20):
        items = list(metadata.items())
        rng.shuffle(items)
        assert str(_error(dict(items))) == first


def test_a_long_list_stays_one_bounded_line() -> None:
    # every bad value above, and 50 unknown keys of 74 characters (cut to 64) with a newline in each
    metadata = {**{k: v for k, (v, _) in BAD.items()}, **{f"{i:02d}\n" + "k" * 70: "v" for i in range(50)}}
    err = _error(metadata)
    message = str(err)
    assert len(err.problems) == len(BAD) + 50 and len(message) <= MAX_MESSAGE_CHARS
    assert "\n" not in message and re.search(r"; and \d+ more; allowed keys: ", message), message
    shown = _keys_named(message)
    hidden = int(re.findall(r"; and (\d+) more", message)[0])
    assert shown == [p.key.replace("\n", "\\n") for p in err.problems][: len(shown)]
    assert len(shown) + hidden == len({p.key for p in err.problems})
    assert all(len(p.key) <= 64 for p in err.problems)


def test_map_rules_slot_in_and_are_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    def scale_to_zero_needs_activation(data: Mapping[str, str]) -> Iterable[Problem]:
        if data.get("scaleToZero", "true").lower() == "true" and "activationQuery" not in data:
            yield Problem("activationQuery", "is required while scaleToZero is true")

    monkeypatch.setattr(
        config_module, "MAP_RULES", (*config_module.MAP_RULES, scale_to_zero_needs_activation)
    )
    err = _error({"backend": "foo", "deployment": "llama"})
    assert [p.key for p in err.problems] == ["backend", TARGETS_KEY, "activationQuery"]
    assert parse_metadata({**BASE, "scaleToZero": "false"}).scale_to_zero is False


def test_model_validators_that_raise_are_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the map rule, "no target" is found by ScalerConfig's own model validator (which runs once
    # the fields are valid): its ConfigError still names the key.
    rules = tuple(r for r in config_module.MAP_RULES if r.__name__ != "_one_target")
    monkeypatch.setattr(config_module, "MAP_RULES", rules)
    err = _error({"backend": "vllm", "deployment": "llama"})
    assert err.problems == (Problem(TARGETS_KEY, "at least one of these targets is required"),)


def test_ref_problems_and_the_activation_query_are_listed_with_the_metadata() -> None:
    meta = {"backend": "foo", "deployment": "llama", "activationQuery": "sum(pending)"}
    with pytest.raises(ConfigError) as info:
        target_from_ref("ml", "", meta)
    assert [p.key for p in info.value.problems] == ["name", "backend", TARGETS_KEY, "activationQuery"]
    assert 'namespace="ml"' in info.value.problems[-1].message
    # a bad namespace: no confinement to judge against, so the query is not also blamed
    with pytest.raises(ConfigError) as info:
        target_from_ref("ML!", "so", {**BASE, "activationQuery": "sum(pending)"})
    assert [p.key for p in info.value.problems] == ["namespace"]
    # a map refused outright is not judged further
    with pytest.raises(ConfigError) as info:
        target_from_ref("ml", "so", {**{f"k{i}": "v" for i in range(80)}, "activationQuery": "up"})
    assert [p.key for p in info.value.problems] == ["scalerMetadata"]
