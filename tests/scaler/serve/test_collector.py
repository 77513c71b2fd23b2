"""Collects in the child process: the same decisions as in a thread, failures and dead children reported."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import pickle
import signal
from collections.abc import Mapping, Sequence
from typing import cast

import pytest

from scaler.core.config import ScalerConfig, parse_metadata
from scaler.core.decision import Decision, decide
from scaler.core.signals import Measure, Signals
from scaler.core.state import Observation, Series, State
from scaler.core.target import Target, target_from_ref
from scaler.serve import collector as collector_module
from scaler.serve.collector import (
    Collected,
    Decided,
    ProcessCollector,
    RefreshWorkerError,
    ThreadCollector,
    collect_and_decide,
    key_of,
    restamped,
    same_answer,
)
from scaler.sources.prometheus import QueryObserver
from scaler.sources.query import reduce_signals, shape_of
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


class CountingSource(HistorySource):
    """HistorySource, but so-3's queue grows by 10 requests with every collect: the one decision of the
    batch that changes from one collect to the next."""

    def __init__(self, observe: QueryObserver | None = None, collects: int = 0) -> None:
        super().__init__(observe)
        self.collects = collects

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        out = dict(super().collect(targets))
        self.collects += 1
        for key, obs in out.items():
            if key[1] == "so-3":
                signals = dataclasses.replace(obs.signals, queue_requests=10.0 * self.collects)
                out[key] = dataclasses.replace(obs, signals=signals)
        return out


def history_source(url: str, observe: QueryObserver) -> Source:
    return HistorySource(observe)


def counting_source(url: str, observe: QueryObserver) -> Source:
    return CountingSource(observe)


_STEPS = itertools.count()


def stepping_clock() -> float:
    """2 s later at every call (in whichever process calls it)."""
    return NOW_S + 2.0 * next(_STEPS)


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


def test_the_child_runs_at_the_niceness_it_was_given() -> None:
    """KEDA's calls come first: the refresh child lowers its own priority by ``nice``."""
    collector = ProcessCollector(history_source, clock=fixed_clock, nice=7)

    async def go() -> tuple[int, Collected]:
        pid = await collector.start()
        return os.getpriority(os.PRIO_PROCESS, pid), await collector.collect("u", _targets()[:1])

    try:
        niceness, collected = asyncio.run(go())
    finally:
        collector.close()
    assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
    assert (
        collected.decided[("ns", "so-0", "d0")]
        == collect_and_decide(HistorySource(), _targets()[:1], fixed_clock).decided[("ns", "so-0", "d0")]
    )


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


def _meta(deployment: str, queue_per_replica: str = "4") -> dict[str, str]:
    return {
        "backend": "vllm",
        "deployment": deployment,
        "targetQueuePerReplica": queue_per_replica,
        "scaleToZero": "false",
        "latencySloSeconds": "2",
    }


def test_targets_cross_once_and_changed_metadata_is_decided_afresh() -> None:
    """The child keeps the targets it was sent: a refresh of the same target objects sends none, a
    ScaledObject whose metadata changed sends only its new Target, and the child decides on it."""
    targets = [target_from_ref("ns", f"so-{i}", _meta(f"d{i}")) for i in range(250)]
    collector = ProcessCollector(history_source, clock=fixed_clock)
    url = "http://prometheus:9090"

    async def go() -> list[Collected]:
        out = [await collector.collect(url, targets)]
        assert collector._change(url, targets).keys is None  # the same objects: nothing to send
        out.append(await collector.collect(url, targets))
        # so-7 now targets 1 request per replica: a new Target for the same key
        targets[7] = target_from_ref("ns", "so-7", _meta("d7", queue_per_replica="1"))
        change = collector._change(url, targets)
        assert change.keys is not None and len(change.keys) == 250
        assert change.fresh == [targets[7]]
        out.append(await collector.collect(url, targets))
        return out

    try:
        first, same, changed = asyncio.run(go())
    finally:
        collector.close()
    in_process = collect_and_decide(HistorySource(), targets, fixed_clock).decided
    # 250 decisions in 3 pickled chunks, each equal field by field to one decided in this process
    assert changed.decided == in_process
    assert first.decided == same.decided
    key = ("ns", "so-7", "d7")
    old, new = first.decided[key], changed.decided[key]
    assert not isinstance(old, str) and not isinstance(new, str)
    assert [s.target for s in old.signals if s.signal.value == "queue"] == [4.0]
    assert [s.target for s in new.signals if s.signal.value == "queue"] == [1.0]
    assert first.decided == {k: v for k, v in in_process.items() if k != key} | {key: old}


def test_collects_for_one_url_that_overlap_each_get_their_own_targets() -> None:
    """A new ScaledObject's first fetch can run while a refresh of the same Prometheus is in flight:
    each collect is answered for exactly its own targets."""
    refresh = [target_from_ref("ns", f"so-{i}", _meta(f"d{i}")) for i in range(30)]
    first_fetch = [target_from_ref("ns", "so-new", _meta("dnew"))]
    collector = ProcessCollector(history_source, clock=fixed_clock)

    async def go() -> tuple[Collected, ...]:
        await collector.collect("u", refresh)
        rounds = [collector.collect("u", refresh), collector.collect("u", first_fetch)] * 2
        return tuple(await asyncio.gather(*rounds, collector.collect("u", [*refresh, *first_fetch])))

    try:
        results = asyncio.run(go())
    finally:
        collector.close()
    assert [len(r.decided) for r in results] == [30, 1, 30, 1, 31]
    assert set(results[1].decided) == {("ns", "so-new", "dnew")}
    assert (
        results[4].decided
        == collect_and_decide(HistorySource(), [*refresh, *first_fetch], fixed_clock).decided
    )


def test_what_the_child_holds_is_cleared_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import scaler.serve.collector as collector_module

    monkeypatch.setattr(collector_module, "MAX_TARGETS", 25)
    collector = ProcessCollector(history_source, clock=fixed_clock)
    a = [target_from_ref("ns", f"a-{i}", _meta(f"a{i}")) for i in range(15)]
    b = [target_from_ref("ns", f"b-{i}", _meta(f"b{i}")) for i in range(15)]

    async def go() -> tuple[Collected, Collected]:
        await collector.collect("u", a)
        change = collector._change("u", b)
        assert change.reset and change.fresh == b  # 15 held + 15 new > 25: start afresh
        out_b = await collector.collect("u", b)
        assert set(collector._held["u"]) == {key_of(t) for t in b}
        return out_b, await collector.collect("u", a)  # a again: sent afresh, decided the same

    try:
        out_b, out_a = asyncio.run(go())
    finally:
        collector.close()
    assert out_b.decided == collect_and_decide(HistorySource(), b, fixed_clock).decided
    assert out_a.decided == collect_and_decide(HistorySource(), a, fixed_clock).decided


def test_a_child_out_of_step_fails_one_collect_and_the_next_sends_everything() -> None:
    """If the two sides ever disagree on what the child holds (here: this side believes it sent a list
    the child never got), the collect fails with that message, and the next one sends every target."""
    targets = _targets()
    collector = ProcessCollector(history_source, clock=fixed_clock)

    async def go() -> Collected:
        await collector.start()
        collector._last["u"] = list(targets)  # out of step: the child holds nothing for "u"
        with pytest.raises(RefreshWorkerError, match="lost its targets"):
            await collector.collect("u", targets)
        change = collector._change("u", targets)
        assert change.keys is not None and change.fresh == targets
        return await collector.collect("u", targets)

    try:
        collected = asyncio.run(go())
    finally:
        collector.close()
    assert collected.decided == collect_and_decide(HistorySource(), targets, fixed_clock).decided


def test_only_changed_decisions_cross_and_the_rest_are_restamped() -> None:
    """A decision equal in every field but its time to the last one sent crosses as its position; this
    side restamps the one it holds. Here so-3's queue grows every collect: one decision of 21 crosses."""
    targets = _targets()
    collector = ProcessCollector(counting_source, clock=fixed_clock)

    async def go() -> tuple[list[int], list[Collected]]:
        crossed, out = [], []
        for _ in range(3):
            out.append(await collector.collect("u", targets))
            crossed.append(collector.last_crossed)
        return crossed, out

    try:
        crossed, collected = asyncio.run(go())
    finally:
        collector.close()
    assert crossed == [21, 1, 1]  # the message for so-gone is unchanged too
    for n, c in enumerate(collected):
        assert c.decided == collect_and_decide(CountingSource(collects=n), targets, fixed_clock).decided
    queue = [next(s.value for s in c.decided[("ns", "so-3", "d3")].signals if s.signal.value == "queue")  # type: ignore[union-attr]
             for c in collected]  # fmt: skip
    assert queue == [10.0, 20.0, 30.0]


def test_unchanged_decisions_carry_the_time_of_the_collect() -> None:
    """On a clock that moves 2 s per call every decision says when it was made, crossed or restamped,
    and equals one made in this process at that time."""
    targets = _targets()
    collector = ProcessCollector(history_source, clock=stepping_clock)

    async def go() -> list[Collected]:
        return [await collector.collect("u", targets) for _ in range(3)]

    try:
        collected = asyncio.run(go())
    finally:
        collector.close()
    assert len({c.now_s for c in collected}) == 3
    for c in collected:
        assert all(d.now_s == c.now_s for d in c.decided.values() if isinstance(d, Decision))

        def then(c: Collected = c) -> float:
            return c.now_s

        assert c.decided == collect_and_decide(HistorySource(), targets, then).decided


def test_restamped_is_replace_of_the_time() -> None:
    decided = collect_and_decide(HistorySource(), _targets()[:1], fixed_clock).decided
    decision = next(iter(decided.values()))
    assert isinstance(decision, Decision)
    assert restamped(decision, NOW_S + 5) == dataclasses.replace(decision, now_s=NOW_S + 5)
    assert restamped(decision, NOW_S + 5).now_s == NOW_S + 5 and decision.now_s == NOW_S
    assert restamped(decision, NOW_S) is decision
    assert same_answer(decision, restamped(decision, NOW_S + 5))
    assert not same_answer(
        decision, dataclasses.replace(decision, desired_replicas=decision.desired_replicas + 1)
    )
    assert same_answer("not a Deployment", "not a Deployment")
    assert not same_answer(None, "not a Deployment") and not same_answer("gone", decision)
    assert not same_answer(decision, dataclasses.replace(decision, reason_note="another note"))
    # NaN is unequal to itself: a decision holding one always crosses (the safe side)
    first = dataclasses.replace(decision.signals[0], value=float("nan"))
    with_nan = dataclasses.replace(decision, signals=(first, *decision.signals[1:]))
    assert not same_answer(with_nan, pickle.loads(pickle.dumps(with_nan)))


def test_out_of_step_decisions_fail_one_collect_and_the_next_sends_every_decision() -> None:
    targets = _targets()
    collector = ProcessCollector(history_source, clock=fixed_clock)

    async def go() -> tuple[int, Collected]:
        await collector.collect("u", targets)
        collector._decided["u"].pop(("ns", "so-5", "d5"))  # this side lost one the child thinks it has
        with pytest.raises(RefreshWorkerError, match="none is held here"):
            await collector.collect("u", targets)
        collected = await collector.collect("u", targets)
        return collector.last_crossed, collected

    try:
        crossed, collected = asyncio.run(go())
    finally:
        collector.close()
    assert crossed == len(targets)
    assert collected.decided == collect_and_decide(HistorySource(), targets, fixed_clock).decided


def test_the_child_forgets_the_decisions_it_sent_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in this process (the bound is patched here, not in a spawned child): past MAX_TARGETS keys
    the child forgets what it sent and sends every decision, saying so."""
    monkeypatch.setattr(collector_module, "MAX_TARGETS", 25)
    monkeypatch.setattr(collector_module, "_child", collector_module._ChildState())
    collector_module._child_init(history_source, fixed_clock, logging.WARNING, 0)
    a = [target_from_ref("ns", f"a-{i}", _meta(f"a{i}")) for i in range(15)]
    b = [target_from_ref("ns", f"b-{i}", _meta(f"b{i}")) for i in range(15)]

    def ship(targets: list[Target]) -> collector_module._Shipped:
        change = collector_module._TargetChange([key_of(t) for t in targets], targets, reset=True)
        return collector_module._child_collect("u", change)

    first, again, other, past = ship(a), ship(a), ship(b), ship(a)
    assert (len(first.chunks), len(first.unchanged) // 4, first.decisions_reset) == (1, 0, False)
    assert (len(again.chunks), len(again.unchanged) // 4) == (0, 15)  # the same 15: positions only
    assert not other.decisions_reset and len(other.unchanged) == 0  # 30 keys sent now, over 25
    assert past.decisions_reset and len(past.unchanged) == 0 and len(past.chunks) == 1


class QuietSource:
    """Returns the very same Observation object for every target at every collect (the source's promise
    that nothing in it ages), except ``so-busy``, which gets a new one each time."""

    def __init__(self) -> None:
        self.held: dict[Key, Observation] = {}

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        out: dict[Key, Observation] = {}
        for t in targets:
            if t.name == "so-busy":
                out[key_of(t)] = Observation(
                    Signals(current_replicas=2, ready_replicas=2, queue_requests=9.0)
                )
            else:
                out[key_of(t)] = self.held.setdefault(key_of(t), Observation(Signals(0, 0)))
        return out


def test_the_same_observation_for_the_same_target_is_restamped_not_decided_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meta = {"backend": "vllm", "targetQueuePerReplica": "4", "scaleToZero": "false"}
    targets = [target_from_ref("ns", name, {**meta, "deployment": name}) for name in ("so-quiet", "so-busy")]
    calls: list[str] = []

    def counting(signals: Signals, state: State, config: ScalerConfig, now_s: float) -> Decision:
        calls.append(config.deployment)
        return decide(signals, state, config, now_s)

    monkeypatch.setattr(collector_module, "decide", counting)
    source, held = QuietSource(), cast(Decided, {})
    times = iter([NOW_S, NOW_S + 2, NOW_S + 4])
    first = collect_and_decide(source, targets, lambda: next(times), held)
    second = collect_and_decide(source, targets, lambda: next(times), held)
    assert calls == ["so-quiet", "so-busy", "so-busy"]  # the quiet one decided once
    quiet = ("ns", "so-quiet", "so-quiet")
    made = first.decided[quiet]
    assert isinstance(made, Decision)
    assert second.decided[quiet] == dataclasses.replace(made, now_s=NOW_S + 2)
    assert second.decided[quiet] == decide(Signals(0, 0), State(), targets[0].config, NOW_S + 2)
    # changed metadata is a new Target: decided afresh even from the same Observation object
    changed = [
        target_from_ref("ns", "so-quiet", {**meta, "deployment": "so-quiet", "targetQueuePerReplica": "8"})
    ]
    collect_and_decide(source, changed, lambda: next(times), held)
    assert calls[-1] == "so-quiet" and list(held) == [quiet]  # and only this collect's keys stay held
    # without a held map (the simulator, one-off explains) every target is decided
    calls.clear()
    collect_and_decide(source, targets, fixed_clock)
    collect_and_decide(source, targets, fixed_clock)
    assert calls == ["so-quiet", "so-busy"] * 2


QUIET_CONFIGS = [
    {"targetQueuePerReplica": "4"},
    {"latencySloSeconds": "2"},
    {"latencySloSeconds": "2", "coldStartSeconds": "300"},
    {"targetTokensPerSecondPerReplica": "2000", "targetGpuUtilization": "70"},
    {
        "targetGpuUtilization": "70",
        "minIdleSeconds": "600",
        "latencyMetric": "ttft",
        "latencySloSeconds": "1",
    },
]


@pytest.mark.parametrize("meta", QUIET_CONFIGS, ids=lambda m: ",".join(m))
@pytest.mark.parametrize("backend", ["vllm", "triton"])
@pytest.mark.parametrize("to_zero", ["false", "true"])
def test_an_observation_with_nothing_in_it_decides_the_same_at_any_time(
    meta: dict[str, str], backend: str, to_zero: str
) -> None:
    """The premise of restamping: with no samples, no pods, no history and no activationQuery (what
    PrometheusSource returns the same object for), ``decide`` answers the same a minute or an hour later.
    (scaleToZero without an activationQuery is refused at the edge; an embedder can still build one.)"""
    config = parse_metadata({"backend": backend, "deployment": "d", "scaleToZero": to_zero, **meta})
    target = Target("ns", "so", config)
    signals = reduce_signals(target, {}, None, window_s=60.0, shape=shape_of(target, {}, None))
    state = State(notes={"replicas": "no Kubernetes API access", "pods": "guessing"}, rate_window_s=60.0)
    first = decide(signals, state, target.config, NOW_S)
    for later_s in (2.0, 15.0, 600.0, 3600.0):
        later = decide(signals, state, target.config, NOW_S + later_s)
        assert later == restamped(first, NOW_S + later_s), later_s
