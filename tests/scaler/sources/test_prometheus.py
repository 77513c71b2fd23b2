"""PrometheusSource against a real Prometheus: history is read and reduced once per history step."""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaler.core.config import parse_metadata
from scaler.core.signals import Measure
from scaler.core.target import Target
from scaler.sources.prometheus import PrometheusSource, SourceError
from scaler.sources.query import Query, RangeSample, merge_history, plan_history, reduce_signals, shape_of
from tests.harness.exporter import FakeFleet, FakePod
from tests.harness.prometheus import PrometheusProcess

NS = "histmemo"


@pytest.fixture(scope="module")
def targets(fleet: FakeFleet, prometheus: PrometheusProcess) -> Iterator[list[Target]]:
    pod = fleet.add(FakePod(NS, "llm-5d4f8b7c9-hhhhh", waiting=3, running=1, generation_tokens_per_s=100))
    # three scrapes at least, so the 10 s rate has points inside a 15 s history step
    prometheus.wait_until(f'count_over_time(vllm:num_requests_waiting{{namespace="{NS}"}}[1m]) >= 3', bool)
    meta = {"backend": "vllm", "deployment": "llm", "targetQueuePerReplica": "4"}
    yield [Target(NS, "llm", parse_metadata(meta)), Target(NS, "other", parse_metadata(meta))]
    fleet.remove(pod.namespace, pod.name)


def _stepped_source(prometheus: PrometheusProcess) -> tuple[PrometheusSource, list[float]]:
    """A source whose clock is ``now[0]``, set 1 s into the next 15 s history step (so +2 s stays in it
    and +15 s is the one after). The pod's first scrape is before that step's end, and Prometheus answers
    a range ending a little ahead with the latest sample."""
    real = time.time()
    now = [real - real % 15 + 16]
    return PrometheusSource(prometheus.url, rate_window="10s", history_step_s=15.0, clock=lambda: now[0]), now


def test_history_is_read_and_reduced_once_per_step(
    prometheus: PrometheusProcess, targets: list[Target]
) -> None:
    src, now = _stepped_source(prometheus)
    history_queries = len(plan_history(targets, "10s").queries)

    first = src.collect(targets)
    queries_first = src.queries_last_collect
    queue = first[(NS, "llm", "llm")].state.history[Measure.QUEUE]
    assert len(queue) >= 1 and set(queue.values) == {4.0}  # waiting 3 + running 1
    assert isinstance(queue.values, array) and queue.values.typecode == "d"
    # the rates in the history are over the source's window: keep-warm counts idle time from it
    assert first[(NS, "llm", "llm")].state.rate_window_s == 10.0

    now[0] += 2.0
    second = src.collect(targets)
    assert src.queries_last_collect == queries_first - history_queries  # history ranges are not re-sent
    # the same Series objects: nothing is re-reduced or re-allocated between history steps
    assert second[(NS, "llm", "llm")].state.history[Measure.QUEUE] is queue
    # two ScaledObjects on one Deployment share its reduction
    assert second[(NS, "other", "llm")].state.history[Measure.QUEUE] is queue

    now[0] += 15.0
    third = src.collect(targets)
    assert src.queries_last_collect == queries_first
    assert third[(NS, "llm", "llm")].state.history[Measure.QUEUE] is not queue


def test_a_batch_inside_the_last_history_read_reuses_it(
    prometheus: PrometheusProcess, targets: list[Target]
) -> None:
    src, _ = _stepped_source(prometheus)
    src.collect(targets)
    full = src.queries_last_collect
    # a first fetch of one newly registered ScaledObject, in a namespace the last read covered
    src.collect(targets[:1])
    assert src.queries_last_collect == full - len(plan_history(targets[:1], "10s").queries)
    # one in a namespace it did not cover: history is read again
    meta = {"backend": "vllm", "deployment": "llm", "targetQueuePerReplica": "4"}
    src.collect([Target("elsewhere", "llm", parse_metadata(meta))])
    assert src.queries_last_collect == full


def test_a_target_without_samples_reuses_its_reduction_while_its_target_is_the_same(
    prometheus: PrometheusProcess, targets: list[Target]
) -> None:
    """A Deployment with no pod (at zero, or not exporting yet) reads the same every refresh: its shape
    and signals are reused while its Target is the same object, and equal what reducing afresh gives."""
    src, now = _stepped_source(prometheus)
    meta = {"backend": "vllm", "deployment": "ghost", "targetQueuePerReplica": "4"}
    ghost = Target(NS, "ghost", parse_metadata(meta))
    key = (NS, "ghost", "ghost")
    first = src.collect([*targets, ghost])[key].signals
    now[0] += 2.0
    second = src.collect([*targets, ghost])[key].signals
    assert second is first
    assert first == reduce_signals(ghost, {}, None, window_s=10.0, shape=shape_of(ghost, {}, None))
    assert first.current_replicas == 0 and first.queue_requests is None
    # changed metadata is a new Target: reduced afresh, on its own metadata
    changed = Target(NS, "ghost", parse_metadata({**meta, "targetGpuUtilization": "70"}))
    third = src.collect([*targets, changed])[key].signals
    assert third is not first
    assert third == reduce_signals(changed, {}, None, window_s=10.0, shape=shape_of(changed, {}, None))
    # the Deployment with a pod is never served from it
    assert (NS, "llm", "llm") not in src._unsampled
    assert src.collect(targets)[(NS, "llm", "llm")].signals.queue_requests == 4.0


def test_a_target_with_nothing_to_read_is_the_same_observation_until_something_changes(
    prometheus: PrometheusProcess, fleet: FakeFleet, targets: list[Target]
) -> None:
    """No samples, no pods, no history, no activationQuery: the very same Observation object, which the
    refresh restamps instead of deciding again (``collect_and_decide``), and a new one as soon as any of
    those is there."""
    src, now = _stepped_source(prometheus)
    meta = {"backend": "vllm", "deployment": "quiet", "targetQueuePerReplica": "4", "scaleToZero": "false"}
    quiet = Target(NS, "quiet", parse_metadata(meta))
    woken = Target(
        NS,
        "woken",
        parse_metadata({**meta, "activationQuery": f'vllm:num_requests_waiting{{namespace="{NS}"}}'}),
    )
    key, llm = (NS, "quiet", "quiet"), (NS, "llm", "llm")
    first = src.collect([*targets, quiet, woken])
    now[0] += 2.0
    second = src.collect([*targets, quiet, woken])
    assert second[key] is first[key]
    assert first[key].signals.current_replicas == 0 and not first[key].state.history.get(Measure.QUEUE)
    # read every refresh: a Deployment with a pod, and a target whose activationQuery has a value
    assert second[llm] is not first[llm]
    assert second[(NS, "woken", "quiet")] is not first[(NS, "woken", "quiet")]
    now[0] += 15.0  # the next history step: still nothing in it
    assert src.collect([*targets, quiet])[key] is first[key]
    # changed metadata is a new Target: a new Observation
    changed = Target(NS, "quiet", parse_metadata({**meta, "targetGpuUtilization": "70"}))
    assert src.collect([*targets, changed])[key] is not first[key]
    # a pod appears: its samples are read, and the next refresh is a new Observation again
    pod = fleet.add(FakePod(NS, "quiet-5d4f8b7c9-qqqqq", waiting=2, running=0, generation_tokens_per_s=0))
    try:
        prometheus.wait_until(f'vllm:num_requests_waiting{{namespace="{NS}",pod=~"quiet-.*"}}', bool)
        now[0] += 2.0
        awake = src.collect([*targets, changed])[key]
        assert awake.signals.queue_requests == 2.0
        now[0] += 2.0
        assert src.collect([*targets, changed])[key] is not awake
    finally:
        fleet.remove(pod.namespace, pod.name)


def test_each_history_step_reads_only_the_new_steps_and_equals_a_whole_read(
    fleet: FakeFleet, targets: list[Target], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hour is read once; each later step reads from two steps before the last read's end (late
    samples) and keeps the rest. Merged, it is what reading the whole hour returns, series by series.
    On a Prometheus of its own, given the hour before it started (as a production one has it), with
    ends 60 s and more in the past, so every sample in them has reached it."""
    started = time.time()
    own = PrometheusProcess(tmp_path, fleet.address, fleet.sd_file)
    own.start()
    try:
        own.wait_until(f'vllm:num_requests_waiting{{namespace="{NS}"}}', bool)
        assert own.backfill(f'{{namespace="{NS}"}}', started - 3900, started - 5) > 0
        own.wait_until(f'count_over_time(vllm:num_requests_waiting{{namespace="{NS}"}}[1h]) > 600', bool)
        _incremental_equals_whole(own, targets, monkeypatch)
    finally:
        own.stop()


def _incremental_equals_whole(
    prometheus: PrometheusProcess, targets: list[Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time()
    end = real - real % 15 - 60
    now = [end + 1]
    src = PrometheusSource(prometheus.url, rate_window="10s", history_step_s=15.0, clock=lambda: now[0])
    ranges: list[tuple[str, float, float]] = []
    send = src.query_range

    def spy(q: Query, start_s: float, end_s: float, step_s: float) -> list[RangeSample]:
        ranges.append((q.kind, start_s, end_s))
        return send(q, start_s, end_s, step_s)

    monkeypatch.setattr(src, "query_range", spy)
    src.collect(targets)
    assert {(a, b) for _, a, b in ranges} == {(end - 3600, end)}  # the first read: the hour
    for step_s in (15.0, 45.0):  # the next step, and one three steps on (a refresh that came late)
        ranges.clear()
        previous_end = end
        end += step_s
        now[0] += step_s
        merged = src.collect(targets)
        assert {(a, b) for _, a, b in ranges} == {(previous_end - 30, end)}
        whole_src = PrometheusSource(
            prometheus.url, rate_window="10s", history_step_s=15.0, clock=lambda: now[0]
        )
        whole = whole_src.collect(targets)
        held, read = src._history_read, whole_src._history_read
        assert held is not None and read is not None
        assert held.results.keys() == read.results.keys()
        for kind, series in read.results.items():
            assert held.results[kind] == series, kind  # labels, times and values, in Prometheus' order
        queue = merged[(NS, "llm", "llm")].state.history[Measure.QUEUE]
        assert len(queue) >= 200 and queue.times_s[-1] == end and set(queue.values) == {4.0}
        assert merged[(NS, "llm", "llm")].state == whole[(NS, "llm", "llm")].state
    # other queries (a latency SLO adds one): the whole hour again
    ranges.clear()
    end += 15
    now[0] += 15
    slo = Target(
        NS, "slo", parse_metadata({"backend": "vllm", "deployment": "llm", "latencySloSeconds": "2"})
    )
    src.collect([*targets, slo])
    assert {(a, b) for _, a, b in ranges} == {(end - 3600, end)}


def test_merge_history_keeps_held_points_then_fresh_ones_by_labels() -> None:
    def series(pod: str, times: list[float]) -> RangeSample:
        return RangeSample(
            {"namespace": NS, "pod_prefix": pod}, array("d", times), array("d", [t / 15 for t in times])
        )

    held = [series("b", [0.0, 15.0, 30.0, 45.0]), series("a", [15.0, 30.0])]  # "a" stops at 30
    fresh = [series("b", [30.0, 45.0, 60.0]), series("c", [60.0])]  # "c" is new; 30 and 45 read again
    merged = merge_history(held, fresh, start_s=15.0, since_s=30.0)
    assert merged == [series("a", [15.0]), series("b", [15.0, 30.0, 45.0, 60.0]), series("c", [60.0])]
    assert held[0] == series("b", [0.0, 15.0, 30.0, 45.0])  # the held read is not changed


def test_the_proxy_environment_is_read_once_when_the_source_is_made(
    prometheus: PrometheusProcess, targets: list[Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY and NO_PROXY are honoured, as requests honours them, but read when the source is made,
    not before every query. The proxy here is a closed loopback port: a query sent through it fails."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    direct = PrometheusSource(prometheus.url, rate_window="10s")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    assert direct.collect(targets)[(NS, "llm", "llm")].signals.queue_requests == 4.0  # made before: direct
    proxied = PrometheusSource(prometheus.url, rate_window="10s")
    with pytest.raises(SourceError, match="failed"):
        proxied.collect(targets)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = PrometheusSource(prometheus.url, rate_window="10s")
    assert bypassed.collect(targets)[(NS, "llm", "llm")].signals.queue_requests == 4.0
