"""A ScaledObjectRef validated into a Target: the rules that need the whole trigger, not one key."""

from __future__ import annotations

import pytest

from scaler.core.config import ConfigError
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
