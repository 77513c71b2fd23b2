"""The target cache: one validation per exact ScaledObjectRef, never the old Target for changed metadata."""

from __future__ import annotations

import pytest

from scaler._generated import externalscaler_pb2 as pb
from scaler.core.config import ConfigError
from scaler.serve.targets import TargetCache

META = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "4",
    "model": "m",
    "scaleToZero": "false",
}


def _ref(metadata: dict[str, str], name: str = "so", namespace: str = "ns") -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=metadata)


def test_the_same_map_in_any_order_is_one_target() -> None:
    cache = TargetCache()
    first = cache.get(_ref(META))
    reordered = dict(reversed(list(META.items())))
    assert list(reordered) != list(META)
    assert cache.get(_ref(reordered)) is first
    assert cache.get(_ref(dict(META))) is first
    assert len(cache) == 1


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"targetQueuePerReplica": "2"}, lambda t: t.config.target_queue_per_replica == 2.0),
        ({"deployment": "other"}, lambda t: t.config.deployment == "other"),
        ({"model": "m2"}, lambda t: t.config.model == "m2"),
        ({"latencySloSeconds": "3"}, lambda t: t.config.latency_slo_s == 3.0),
    ],
)
def test_changed_metadata_is_a_new_target(change: dict[str, str], check: object) -> None:
    cache = TargetCache()
    old = cache.get(_ref(META))
    new = cache.get(_ref({**META, **change}))
    assert new is not old and new.config != old.config and callable(check) and check(new)
    assert cache.get(_ref(META)) is old  # the old map still means the old target


def test_a_key_the_scaler_ignores_is_still_a_new_entry() -> None:
    # KEDA's own scalerAddress changes no setting, but the cache keys on the map, not on its meaning
    cache = TargetCache()
    old = cache.get(_ref(META))
    new = cache.get(_ref({**META, "scalerAddress": "keda:9090"}))
    assert new is not old and new == old and len(cache) == 2


def test_name_and_namespace_are_part_of_the_key() -> None:
    cache = TargetCache()
    a = cache.get(_ref(META))
    assert cache.get(_ref(META, name="so2")).name == "so2"
    assert cache.get(_ref(META, namespace="ns2")).namespace == "ns2"
    assert cache.get(_ref(META)) is a and len(cache) == 3


def test_bad_metadata_raises_every_time_and_is_not_kept() -> None:
    cache = TargetCache()
    bad = _ref({**META, "backend": "tgi"})
    errors = []
    for _ in range(3):
        with pytest.raises(ConfigError) as info:
            cache.get(bad)
        errors.append(info.value)
    assert len({id(e) for e in errors}) == 3 and all(e.key == "backend" for e in errors)
    assert len(cache) == 0


def test_bounded_oldest_dropped_first() -> None:
    cache = TargetCache(max_targets=3)
    firsts = [cache.get(_ref(META, name=f"so-{i}")) for i in range(5)]
    assert len(cache) == 3
    assert cache.get(_ref(META, name="so-4")) is firsts[4]  # kept
    again = cache.get(_ref(META, name="so-0"))  # dropped, so validated afresh
    assert again is not firsts[0] and again == firsts[0]


def test_the_activation_query_is_confined_with_the_services_labels() -> None:
    # --activation-namespace-labels reaches the cache: a query pinned by "tenant" is refused by default
    # and accepted when the service allows that label.
    meta = {**META, "activationQuery": 'sum(q{tenant="ns"})'}
    with pytest.raises(ConfigError, match="activationQuery"):
        TargetCache().get(_ref(meta))
    cache = TargetCache(("namespace", "tenant"))
    assert cache.get(_ref(meta)).config.activation_query == 'sum(q{tenant="ns"})'
