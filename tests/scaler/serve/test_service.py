"""Answers built once per refresh, over real gRPC: never older than the snapshot they come from, and never
the old target's for changed metadata. The refresher's own loop is parked (a refresh period of an hour)
so each snapshot is taken by the test, and the clock is stepped."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.core.config import ConfigError
from scaler.core.target import target_from_ref
from scaler.serve.server import ScalerThread, ServeOptions
from tests.reliability.support import MemorySource

NS = "answers"
# Scale to zero allowed, and the gateway in front of it (the MemorySource's activation value) wakes it.
META = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "4",
    "activationQuery": f'sum(gateway_waiting{{namespace="{NS}"}})',
}
STALENESS_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def world() -> Iterator[tuple[ScalerThread, MemorySource, Clock]]:
    source, clock = MemorySource(queue=8.0, replicas=2), Clock()
    options = ServeOptions(
        grpc_port=0,
        metrics_port=-1,
        bind_address="127.0.0.1",
        prometheus_url="http://127.0.0.1:1",
        refresh_s=3600.0,
        staleness_s=STALENESS_S,
    )
    s = ScalerThread(options, source_for=lambda _url: source, clock=clock).start()
    yield s, source, clock
    s.stop()


@pytest.fixture
def stub(world: tuple[ScalerThread, MemorySource, Clock], keda_pb: tuple[ModuleType, ModuleType]) -> Any:
    with grpc.insecure_channel(world[0].address) as ch:
        yield keda_pb[1].ExternalScalerStub(ch)


def _refresh(s: ScalerThread) -> None:
    s.call(s.server.refresher.refresh_all).result(timeout=10)


def _value(stub: Any, pb: ModuleType, meta: dict[str, str], name: str = "so") -> tuple[str, int, float]:
    ref = pb.ScaledObjectRef(name=name, namespace=NS, scalerMetadata=meta)
    req = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=f"llm-{meta['deployment']}")
    (v,) = stub.GetMetrics(req, timeout=5).metricValues
    return v.metricName, v.metricValue, v.metricValueFloat


def test_every_answer_comes_from_the_latest_snapshot(
    world: tuple[ScalerThread, MemorySource, Clock], stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    s, source, clock = world
    pb = keda_pb[0]
    ref = pb.ScaledObjectRef(name="so", namespace=NS, scalerMetadata=META)
    assert _value(stub, pb, META) == ("llm-llama", 2, 2.0)  # ceil(8 / 4), fetched at first sight
    # queue 8 -> 24 -> 40 -> 0 (no replicas): each refresh's decision is what every later call gets,
    # however many calls the previous snapshot answered
    previous = 2
    for queue, replicas, desired, active in ((24.0, 2, 6, True), (40.0, 2, 10, True), (0.0, 0, 0, False)):
        source.queue, source.replicas = queue, replicas
        assert [_value(stub, pb, META)[1] for _ in range(3)] == [previous] * 3  # until the next snapshot
        clock.now_s += 2.0
        _refresh(s)
        assert [_value(stub, pb, META) for _ in range(3)] == [("llm-llama", desired, float(desired))] * 3
        assert stub.IsActive(ref, timeout=5).result is active
        previous = desired


def test_a_memoised_answer_still_goes_stale(
    world: tuple[ScalerThread, MemorySource, Clock], stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    s, source, clock = world
    pb = keda_pb[0]
    assert _value(stub, pb, META)[1] == 2
    source.fail = True  # the source goes down: snapshots stop
    clock.now_s += STALENESS_S - 1
    _refresh(s)
    assert _value(stub, pb, META)[1] == 2  # the last good answer, within the staleness bound
    clock.now_s += 2
    with pytest.raises(grpc.RpcError) as info:
        _value(stub, pb, META)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "old" in (info.value.details() or "")


def test_changed_metadata_is_answered_for_the_new_target_at_once(
    world: tuple[ScalerThread, MemorySource, Clock], stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    _s, source, _clock = world
    pb = keda_pb[0]
    source.per_deployment["other"] = 20.0
    assert _value(stub, pb, META) == ("llm-llama", 2, 2.0)
    # No refresh in between: each change is fetched when first seen, never answered from the old target.
    assert _value(stub, pb, {**META, "targetQueuePerReplica": "1"}) == ("llm-llama", 8, 8.0)
    assert _value(stub, pb, {**META, "targetQueuePerReplica": "2"}) == ("llm-llama", 4, 4.0)
    assert _value(stub, pb, META) == ("llm-llama", 2, 2.0)  # and back
    assert _value(stub, pb, {**META, "deployment": "other"}) == ("llm-other", 5, 5.0)  # ceil(20 / 4)
    assert _value(stub, pb, META) == ("llm-llama", 2, 2.0)


@pytest.mark.parametrize(
    "metadata",
    [
        {"backend": "foo", "deployment": "llama"},  # the case: the backend and the missing target
        {**META, "backend": "tgi", "latencyQuantile": "2", "colour": "blue"},
        {"backend": "vllm", "deployment": "Llama", "latencySloSeconds": "0", "coldStartSeconds": "-1"},
        {**META, "activationQuery": 'sum(q{namespace="kube-system"})', "minIdleSeconds": "-1"},
    ],
)
def test_invalid_argument_lists_every_problem_of_the_map(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType], metadata: dict[str, str]
) -> None:
    pb = keda_pb[0]
    with pytest.raises(ConfigError) as expected:
        target_from_ref(NS, "so", metadata)
    assert len(expected.value.problems) >= 2
    r = pb.ScaledObjectRef(name="so", namespace=NS, scalerMetadata=metadata)
    for call in (
        lambda: stub.GetMetricSpec(r, timeout=5),
        lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r, metricName=""), timeout=5),
        lambda: stub.IsActive(r, timeout=5),
        lambda: next(stub.StreamIsActive(r, timeout=5)),
    ):
        for _ in range(2):  # refused afresh each time: bad maps are not cached
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = info.value.details() or ""
            assert details == str(expected.value)  # the one line, every key in it
            for p in expected.value.problems:
                assert f"key '{p.key}': " in details, (p, details)
