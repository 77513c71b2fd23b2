"""A ScaledObjectRef validated into a Target: the rules that need the whole trigger, not one key."""

from __future__ import annotations

import random

import pytest

from scaler.core.config import ALLOWED_KEYS, MAX_MESSAGE_CHARS, TARGETS_KEY, ConfigError
from scaler.core.target import target_from_ref

BASE = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "8"}
GATEWAY = 'sum(interceptor_request_concurrency{route_namespace="ml", route_name="llama"})'


@pytest.mark.parametrize("scale_to_zero", [{}, {"scaleToZero": "true"}])
def test_scale_to_zero_without_an_activation_query_is_refused_naming_the_fix(
    scale_to_zero: dict[str, str],
) -> None:
    # At zero no pod reports a series: without a query on the demand in front of the Deployment, nothing
    # ever wakes it (deploy/ shipped exactly that).
    with pytest.raises(ConfigError) as info:
        target_from_ref("ml", "so", {**BASE, **scale_to_zero})
    assert info.value.key == "activationQuery"
    for fix in ("Add an activationQuery", 'scaleToZero: "false"', "minReplicaCount >= 1"):
        assert fix in info.value.message


@pytest.mark.parametrize(
    "metadata",
    [
        {"activationQuery": GATEWAY},
        {"scaleToZero": "false"},
        {"scaleToZero": "false", "activationQuery": GATEWAY},
    ],
)
def test_a_way_back_from_zero_or_no_zero_is_accepted(metadata: dict[str, str]) -> None:
    assert target_from_ref("ml", "so", {**BASE, **metadata}).config.deployment == "llama"


def test_the_activation_query_is_confined_with_the_labels_given() -> None:
    query = 'sum(q{tenant="ml"})'
    with pytest.raises(ConfigError, match="activationQuery"):
        target_from_ref("ml", "so", {**BASE, "activationQuery": query})
    labels = ("namespace", "tenant")
    assert (
        target_from_ref("ml", "so", {**BASE, "activationQuery": query}, labels).config.activation_query
        == query
    )


# -- every problem at once, with the rules that need the whole trigger (issue 12) ---------------------------

# The SLO-only trigger the simulator runs: no per-replica target, the engine's numbers and the SLO size it.
SLO_ONLY = {
    "backend": "vllm",
    "deployment": "llama",
    "latencySloSeconds": "5",
    "latencyMetric": "ttft",
    "latencyQuantile": "0.95",
    "coldStartSeconds": "90",
    "activationQuery": GATEWAY,
}


def test_slo_only_metadata_is_a_target() -> None:
    config = target_from_ref("ml", "so", SLO_ONLY).config
    assert (config.latency_slo_s, config.latency_quantile, config.cold_start_s) == (5.0, 0.95, 90.0)
    assert config.target_queue_per_replica is None and config.activation_query == GATEWAY


def _problems(namespace: str, name: str, metadata: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        target_from_ref(namespace, name, metadata)
    return info.value


def _without(metadata: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k not in keys}


@pytest.mark.parametrize(
    ("namespace", "name", "metadata", "expected"),
    [
        # each SLO key bad at once, in the order of the metadata table
        (
            "ml",
            "so",
            {**SLO_ONLY, "latencySloSeconds": "-1", "latencyMetric": "tpot", "latencyQuantile": "1",
             "coldStartSeconds": "0"},
            [("latencySloSeconds", "> 0"), ("latencyQuantile", "(0, 1)"),
             ("latencyMetric", "'e2e' or 'ttft'"), ("coldStartSeconds", "(0, 3600]")],
        ),
        # a bad backend beside an activationQuery reading another namespace: both, in one answer
        (
            "ml",
            "so",
            {**SLO_ONLY, "backend": "tgi", "activationQuery": 'sum(q{namespace="kube-system"})'},
            [("backend", "'vllm' or 'triton'"), ("activationQuery", 'namespace="ml"')],
        ),
        # no SLO and no gateway: the target is missing, the SLO's companions are alone, and nothing can
        # wake the Deployment from zero; with the bad name and backend
        (
            "ml",
            "",
            {**_without(SLO_ONLY, "latencySloSeconds", "activationQuery"), "backend": "foo"},
            [("name", "1-253"), ("backend", "'vllm' or 'triton'"), (TARGETS_KEY, "at least one"),
             ("latencyQuantile", "only allowed together with latencySloSeconds"),
             ("latencyMetric", "only allowed together with latencySloSeconds"),
             ("activationQuery", "Add an activationQuery")],
        ),
        # a bad namespace: nothing to confine the query to, so only the namespace and the other keys
        (
            "ML!",
            "so",
            {**SLO_ONLY, "coldStartSeconds": "lots", "activationQuery": "sum(pending)"},
            [("namespace", "RFC 1123"), ("coldStartSeconds", "finite number")],
        ),
        # a scaleToZero that is not a boolean is its own problem, not also "no way back from zero"
        (
            "ml",
            "so",
            {**_without(SLO_ONLY, "activationQuery"), "scaleToZero": "maybe", "backend": "VLLM"},
            [("backend", "'vllm' or 'triton'"), ("scaleToZero", "true or false")],
        ),
        # an empty activationQuery is named as empty, once
        (
            "ml",
            "so",
            {**SLO_ONLY, "activationQuery": "  ", "deployment": "Llama"},
            [("deployment", "RFC 1123"), ("activationQuery", "empty string")],
        ),
        # a field's Python name is not a metadata key
        (
            "ml",
            "so",
            {**SLO_ONLY, "latency_quantile": "0.9", "cold_start_s": "30"},
            [("cold_start_s", "not a known key"), ("latency_quantile", "not a known key")],
        ),
    ],
)  # fmt: skip
def test_every_problem_of_a_ref_at_once_in_a_stable_order(
    namespace: str, name: str, metadata: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    err = _problems(namespace, name, metadata)
    assert [p.key for p in err.problems] == [key for key, _ in expected], err.problems
    for p, (_, fragment) in zip(err.problems, expected, strict=True):
        assert fragment in p.message, (p, fragment)
    message = str(err)
    assert message.startswith(f"metadata key '{expected[0][0]}': ") and "\n" not in message
    assert len(message) <= MAX_MESSAGE_CHARS and "more" not in message, message
    for key, _ in expected:  # every key named once in the one line
        assert message.count(f"key '{key}': ") == 1, message
    rng = random.Random(7)
    for _ in range(10):  # the order of the map does not matter
        items = list(metadata.items())
        rng.shuffle(items)
        assert str(_problems(namespace, name, dict(items))) == message


def test_the_way_back_from_zero_stays_readable_among_other_problems() -> None:
    # The longest message a ref commonly gets: the remedy must not be cut off by the other problems.
    meta = {"backend": "tgi", "deployment": "Llama", "targetQueuePerReplica": "0", "colour": "blue"}
    message = str(_problems("ml", "so", meta))
    assert len(message) <= MAX_MESSAGE_CHARS, message
    assert 'Add an activationQuery, or set scaleToZero: "false" and minReplicaCount >= 1' in message
    assert message.endswith("allowed keys: " + ", ".join(ALLOWED_KEYS))
