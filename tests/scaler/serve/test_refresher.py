"""The refresher's first fetches: ScaledObjects registering together share collects."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import CollectorRegistry

from scaler.core.signals import Signals
from scaler.core.state import Observation, State
from scaler.core.target import Target, target_from_ref
from scaler.serve.refresher import Entry, Refresher, Unavailable
from scaler.serve.telemetry import Telemetry
from scaler.sources.source import Key


class CountingSource:
    """Records the size of every collect; the first one may be held open with ``hold_first``."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        self.batches.append(len(targets))
        self.started.set()
        assert self.release.wait(10), "test never released the first collect"
        signals = Signals(current_replicas=1, ready_replicas=1, queue_requests=12.0)
        return {(t.namespace, t.name, t.config.deployment): Observation(signals, State()) for t in targets}


def _refresher(source: CountingSource) -> Refresher:
    return Refresher(
        default_url="http://127.0.0.1:1",
        source_for=lambda _url: source,
        telemetry=Telemetry(CollectorRegistry()),
        clock=lambda: 1_000.0,
    )


def _target(i: int) -> Target:
    return target_from_ref(
        "ns",
        f"so-{i}",
        {"backend": "vllm", "deployment": f"d{i}", "targetQueuePerReplica": "4", "scaleToZero": "false"},
    )


def test_registrations_arriving_together_share_one_collect() -> None:
    source = CountingSource()
    refresher = _refresher(source)

    async def go() -> list[int]:
        entries = await asyncio.gather(*(refresher.ensure(_target(i)) for i in range(200)))
        return [refresher.answer(e).desired_replicas for e in entries]

    desired = asyncio.run(go())
    assert source.batches == [200]
    assert desired == [3] * 200  # ceil(12 / 4): every one got a real first answer


def test_registrations_during_a_collect_form_the_next_batch() -> None:
    source = CountingSource(hold_first=True)
    refresher = _refresher(source)

    async def go() -> None:
        first = asyncio.create_task(refresher.ensure(_target(0)))
        assert await asyncio.to_thread(source.started.wait, 10)
        later = [asyncio.create_task(refresher.ensure(_target(i))) for i in range(1, 51)]
        await asyncio.sleep(0)  # let them all join the open batch while the first collect is held
        source.release.set()
        await asyncio.gather(first, *later)
        # asking again for a known ScaledObject does not fetch
        await refresher.ensure(_target(7))

    asyncio.run(go())
    assert source.batches == [1, 50]


def test_same_scaledobject_asked_twice_at_once_is_fetched_once() -> None:
    source = CountingSource()
    refresher = _refresher(source)

    async def go() -> None:
        await asyncio.gather(*(refresher.ensure(_target(1)) for _ in range(5)))

    asyncio.run(go())
    assert source.batches == [1]


def test_closing_during_a_first_fetch_answers_its_waiters_and_leaves_no_task() -> None:
    source = CountingSource(hold_first=True)
    refresher = _refresher(source)

    async def go() -> tuple[Entry, int]:
        waiter = asyncio.create_task(refresher.ensure(_target(0)))
        assert await asyncio.to_thread(source.started.wait, 10)
        await refresher.aclose()
        entry = await asyncio.wait_for(waiter, 5)  # answered, not left hanging on the cancelled fetch
        return entry, len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    try:
        entry, pending = asyncio.run(go())
    finally:
        source.release.set()  # the collect's worker thread may end now
    assert pending == 0
    with pytest.raises(Unavailable, match=r"no data yet for ns/so-0 \(d0\): first read pending"):
        refresher.answer(entry)
