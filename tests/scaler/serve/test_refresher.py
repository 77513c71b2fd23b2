"""The refresher's first fetches: ScaledObjects registering together share collects."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry

from scaler.core.signals import Signals
from scaler.core.state import Observation, State
from scaler.core.target import Target, target_from_ref
from scaler.serve.refresher import Refresher
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
