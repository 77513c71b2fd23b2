"""Collects in the child process: the same decisions as in a thread, failures and dead children reported."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping, Sequence

import pytest

from scaler.core.signals import Measure, Signals
from scaler.core.state import Observation, Series, State
from scaler.core.target import Target, target_from_ref
from scaler.serve.collector import (
    Collected,
    ProcessCollector,
    RefreshWorkerError,
    ThreadCollector,
    collect_and_decide,
    key_of,
)
from scaler.sources.prometheus import QueryObserver
from scaler.sources.source import Key, Source

NOW_S = 1_000_000.0


def fixed_clock() -> float:
    return NOW_S


class HistorySource:
    """Every input decide reads, fixed: signals, an hour of history on a 15 s step, warming pods, cold
    starts; a target named ``so-gone`` is one the source cannot answer for. Reports one query per collect."""

    def __init__(self, observe: QueryObserver | None = None) -> None:
        self.observe = observe

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        if self.observe is not None:
            self.observe("vllm:queue", 0.25, None)
        times = [NOW_S - 3600 + 15 * i for i in range(240)]
        out: dict[Key, Observation] = {}
        for i, t in enumerate(targets):
            if t.name == "so-gone":
                out[key_of(t)] = Observation(Signals(None, None), State(), "not a Deployment")
                continue
            queue = [float((j + i) % 9) for j in range(240)]
            history = {
                Measure.QUEUE: Series(times, queue),
                Measure.REQUESTS: Series(times, [q / 4 for q in queue]),
                Measure.READY: Series(times, [2.0] * 240),
                Measure.REPLICAS: Series(times, [2.0] * 240),
            }
            signals = Signals(
                current_replicas=3, ready_replicas=2, queue_requests=6.0 + i, requests_per_s=1.5
            )
            state = State(
                warming_replicas=1,
                warming_ages_s=(40.0,),
                cold_start_samples_s=(90.0, 120.0),
                history=history,
            )
            out[key_of(t)] = Observation(signals, state)
        return out


class FailingSource:
    def __init__(self, observe: QueryObserver) -> None:
        self.observe = observe

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        self.observe("up", 0.5, RuntimeError("connection refused"))
        raise RuntimeError("prometheus http://127.0.0.1:1: query up failed: connection refused")


def history_source(url: str, observe: QueryObserver) -> Source:
    return HistorySource(observe)


def failing_source(url: str, observe: QueryObserver) -> Source:
    return FailingSource(observe)


def _targets() -> list[Target]:
    meta = {"backend": "vllm", "targetQueuePerReplica": "4", "scaleToZero": "false", "latencySloSeconds": "2"}
    targets = [target_from_ref("ns", f"so-{i}", {**meta, "deployment": f"d{i}"}) for i in range(20)]
    return [*targets, target_from_ref("ns", "so-gone", {**meta, "deployment": "sts"})]


def _run(collector: ProcessCollector, targets: Sequence[Target]) -> tuple[int, Collected]:
    async def go() -> tuple[int, Collected]:
        pid = await collector.start()
        return pid, await collector.collect("http://prometheus:9090", targets)

    try:
        return asyncio.run(go())
    finally:
        collector.close()


def test_the_child_decides_exactly_what_the_thread_decides() -> None:
    targets = _targets()
    observed: list[tuple[str, float, Exception | None]] = []
    collector = ProcessCollector(history_source, clock=fixed_clock)
    collector.observe_queries(lambda kind, s, e: observed.append((kind, s, e)))
    pid, child = _run(collector, targets)
    in_thread = asyncio.run(ThreadCollector(lambda _url: HistorySource(), fixed_clock).collect("u", targets))

    assert pid != os.getpid()
    assert child.now_s == in_thread.now_s == NOW_S
    assert child.decided == in_thread.decided  # every field of every Decision, and the message
    assert child.decided[("ns", "so-gone", "sts")] == "not a Deployment"
    assert all(not isinstance(d, str) and d.valid for k, d in child.decided.items() if k[1] != "so-gone")
    assert child.decided == collect_and_decide(HistorySource(), targets, fixed_clock).decided
    assert observed == [("vllm:queue", 0.25, None)]  # the child's query, in this process' metrics


def test_a_failed_collect_raises_its_message_and_still_reports_its_queries() -> None:
    observed: list[tuple[str, float, Exception | None]] = []
    collector = ProcessCollector(failing_source, clock=fixed_clock)
    collector.observe_queries(lambda kind, s, e: observed.append((kind, s, e)))
    with pytest.raises(RefreshWorkerError, match="query up failed: connection refused"):
        _run(collector, _targets())
    assert [(k, s, str(e)) for k, s, e in observed] == [("up", 0.5, "connection refused")]


def test_a_dead_child_fails_one_collect_and_the_next_spawns_a_new_one() -> None:
    collector = ProcessCollector(history_source, clock=fixed_clock)
    targets = _targets()

    async def go() -> tuple[int, int, Collected]:
        first = await collector.start()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(RefreshWorkerError, match="refresh process died"):
            await collector.collect("u", targets)
        collected = await collector.collect("u", targets)
        return first, await collector.start(), collected

    try:
        first, second, collected = asyncio.run(go())
    finally:
        collector.close()
    assert second != first
    assert len(collected.decided) == len(targets)
