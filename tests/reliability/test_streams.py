"""StreamIsActive under abuse: storms of streams opened and cancelled, clients that hang, vanish or time
out. Afterwards the server's loop has the tasks it had before, the process the threads, and the
llm_scaler_active_streams gauge reads 0."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.serve.server import ScalerThread, ServeOptions
from tests.reliability.support import MemorySource, wait_for

NS = "streams"
SOS = 20  # distinct ScaledObjects the streams spread over


def _meta(i: int) -> dict[str, str]:
    return {
        "backend": "vllm",
        "deployment": f"d{i}",
        "targetQueuePerReplica": "4",
        "activationQuery": f'sum(gateway_pending_requests{{namespace="{NS}"}})',
    }


@pytest.fixture
def scaler() -> Iterator[tuple[ScalerThread, MemorySource]]:
    # No replicas: queue 8 activates from zero, queue 0 stays at zero, so flipping the queue flips IsActive.
    source = MemorySource(queue=8.0, replicas=0)
    options = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url="http://127.0.0.1:1",
        refresh_s=0.2,
    )
    s = ScalerThread(options, source_for=lambda _url: source).start()
    yield s, source
    s.stop()


def _tasks(scaler: ScalerThread) -> int:
    """Tasks on the server's loop, less the refresher's own (one refresh in flight at most, by design: under
    CPU load a refresh can be running whenever the count is taken, which is not a leak)."""

    async def count() -> int:
        return sum(
            1
            for t in asyncio.all_tasks()
            if not t.get_coro().__qualname__.startswith("Refresher.")  # type: ignore[union-attr]
        )

    return int(scaler.call(count).result(timeout=10))


def _streams(scaler: ScalerThread) -> float:
    return float(scaler.server.telemetry.streams._value.get())


def _settled(scaler: ScalerThread, tasks: int, threads: int) -> None:
    """Back to the baseline: no stream counted, no extra task on the loop, no extra thread.

    Each ``wait_for`` raises TimeoutError unless its condition holds within 20 s, so a leaked task fails
    here. The task count is not sampled a second time after that: a transient task can exist at any
    instant, and a CI run once caught one (8 tasks, baseline 7) between the wait and a re-check. The
    stream gauge and the thread count do not come back on their own, so they are asserted again."""
    wait_for(lambda: _streams(scaler) == 0 and _tasks(scaler) <= tasks, 20, interval_s=0.1)
    wait_for(lambda: threading.active_count() <= threads, 20, interval_s=0.1)
    assert _streams(scaler) == 0
    assert threading.active_count() <= threads


def _refs(keda_pb: tuple[ModuleType, ModuleType], n: int) -> list[Any]:
    return [
        keda_pb[0].ScaledObjectRef(name=f"so-{i % SOS}", namespace=NS, scalerMetadata=_meta(i % SOS))
        for i in range(n)
    ]


def _baseline(scaler: ScalerThread, stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> tuple[int, int]:
    # Register every ScaledObject first, so the baseline includes their entries and the refresher's work.
    for r in _refs(keda_pb, SOS):
        assert stub.IsActive(r, timeout=5).result is True
    time.sleep(0.5)
    return _tasks(scaler), threading.active_count()


def test_storm_of_open_then_cancelled_streams_leaks_nothing(
    scaler: tuple[ScalerThread, MemorySource], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    s, _ = scaler
    with grpc.insecure_channel(s.address) as ch:
        stub = keda_pb[1].ExternalScalerStub(ch)
        tasks0, threads0 = _baseline(s, stub, keda_pb)
        for _round in range(3):
            streams = [stub.StreamIsActive(r, timeout=60) for r in _refs(keda_pb, 200)]
            firsts = [next(st).result for st in streams]
            assert firsts == [True] * 200
            assert _streams(s) == 200
            assert _tasks(s) >= tasks0 + 200  # one handler task per stream while open
            for st in streams:
                st.cancel()
            _settled(s, tasks0, threads0 + 1)
        # reconnect storm: opened and cancelled before the first message is even read
        for _round in range(5):
            streams = [stub.StreamIsActive(r, timeout=60) for r in _refs(keda_pb, 100)]
            for st in streams:
                st.cancel()
        _settled(s, tasks0, threads0 + 1)


def test_hanging_readers_and_vanishing_clients(
    scaler: tuple[ScalerThread, MemorySource], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    s, source = scaler
    with grpc.insecure_channel(s.address) as ch:
        tasks0, threads0 = _baseline(s, keda_pb[1].ExternalScalerStub(ch), keda_pb)
    # Clients that open streams and never read while the state flips every refresh: the server keeps
    # only the newest decision per stream (a queue of one), so nothing piles up.
    hung = grpc.insecure_channel(s.address)
    stub = keda_pb[1].ExternalScalerStub(hung)
    streams = [stub.StreamIsActive(r, timeout=60) for r in _refs(keda_pb, 100)]
    wait_for(lambda: _streams(s) == 100, 10)
    entries = list(s.server.refresher.entries.values())
    assert len(entries) == SOS
    for _ in range(10):
        source.queue = 0.0 if source.queue else 8.0
        active = source.queue > 0
        # every flip reaches every ScaledObject: unread streams do not hold up the refresh or its pushes
        wait_for(lambda active=active: all(e.decision and e.decision.active is active for e in entries), 10)
        assert all(q.qsize() <= 1 for e in entries for q in e.subscribers)
    # none of the unread streams was dropped by either side
    assert _streams(s) == 100 and not any(st.done() for st in streams)
    # ...then vanish without cancelling: the channel is closed under them
    hung.close()
    _settled(s, tasks0, threads0 + 1)
    # Clients whose deadline expires mid-stream are cleaned up the same way.
    with grpc.insecure_channel(s.address) as ch:
        stub = keda_pb[1].ExternalScalerStub(ch)
        short = [stub.StreamIsActive(r, timeout=0.5) for r in _refs(keda_pb, 50)]
        codes = set()
        for st in short:
            try:
                for _ in st:
                    pass
            except grpc.RpcError as exc:
                codes.add(exc.code())
        assert codes == {grpc.StatusCode.DEADLINE_EXCEEDED}
        _settled(s, tasks0, threads0 + 1)


def test_stream_follows_flips_in_order(
    scaler: tuple[ScalerThread, MemorySource], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    s, source = scaler
    with grpc.insecure_channel(s.address) as ch:
        stub = keda_pb[1].ExternalScalerStub(ch)
        st = stub.StreamIsActive(_refs(keda_pb, 1)[0], timeout=30)
        seen = [next(st).result]
        for _ in range(4):
            source.queue = 0.0 if source.queue else 8.0
            seen.append(next(st).result)
        st.cancel()
    # every message is a change: True, False, True, False, True
    assert seen == [True, False, True, False, True]
    wait_for(lambda: _streams(s) == 0, 10)
