"""Table tests of the pure core: signals + metadata -> verdicts, asks, floors and the decision."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import numpy as np
import pytest

from scaler.core.capacity import PRIOR, Capacity
from scaler.core.config import parse_metadata
from scaler.core.decision import (
    FloorKind,
    Phase,
    Reason,
    SignalVerdict,
    Status,
    ask_history,
    ceil_ratio,
    decide,
    evaluate_signals,
    window_loads,
)
from scaler.core.signals import Measure, SignalName, Signals
from scaler.core.state import LatencyWindow, ReplicaSource, Series, State
from tests.scaler.core.engines import engine_series

NOW_S = 1_700_000_000.0
ALL = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "10",
    "targetTokensPerSecondPerReplica": "1000",
    "targetGpuUtilization": "80",
    "latencySloSeconds": "2",
}
BUSY = Signals(
    current_replicas=4,
    ready_replicas=4,
    queue_requests=35.0,
    tokens_per_s=2500.0,
    gpu_util_percent=90.0,
    latency_s=1.0,
)


def series(values: list[float], step_s: float = 15.0, end_s: float = NOW_S) -> Series:
    n = len(values)
    return Series(tuple(end_s - (n - 1 - i) * step_s for i in range(n)), tuple(values))


# An hour of low demand: every target asks 1 at every step, so each replica above 1 has been idle an hour.
QUIET = State(
    history={Measure.QUEUE: series([1.0] * 240), Measure.TOKENS: series([10.0] * 240)},
    replica_source=ReplicaSource.KUBERNETES,
)


@pytest.mark.parametrize(
    ("name", "signals", "metadata", "state", "desired", "reason", "asks"),
    [
        # queue 35 / 10 -> 4; tokens 2500 / 1000 -> 3; gpu ceil(4 x 90 / 80) = 5; latency 1 s < 1.6 s: none
        ("gpu wins", BUSY, ALL, QUIET, 5, Reason.GPU, {"queue": 4, "tokens": 3, "gpu": 5, "latency": None}),
        (
            "queue alone",
            BUSY,
            {**ALL, "targetGpuUtilization": "100", "targetQueuePerReplica": "5"},
            QUIET,
            7,
            Reason.QUEUE,
            {"queue": 7},
        ),
        # p99 3 s over a 2 s SLO with 4 ready and no histogram: ceil(4 x 3 / 2) = 6
        ("latency over slo", replace(BUSY, latency_s=3.0), ALL, QUIET, 6, Reason.LATENCY, {"latency": 6}),
        # p99 just over: the proportional ask ceil(4 x 2.01 / 2) = 5 is at least one more replica
        (
            "latency barely over",
            replace(BUSY, latency_s=2.01, gpu_util_percent=10.0, queue_requests=1.0, tokens_per_s=1.0),
            ALL,
            QUIET,
            5,
            Reason.LATENCY,
            {"latency": 5},
        ),
        # 80 % of 500 requests within the SLO against 0.99: ceil(4 x 0.99 / 0.8) = 5
        (
            "latency attainment below target",
            replace(
                BUSY, latency_s=2.5, latency_attainment=0.8, latency_requests=500.0, gpu_util_percent=10.0
            ),
            ALL,
            QUIET,
            5,
            Reason.LATENCY,
            {"latency": 5},
        ),
        # everything low but p99 at 85 % of the SLO: hold at current
        (
            "latency guard holds",
            replace(BUSY, queue_requests=1.0, tokens_per_s=10.0, gpu_util_percent=5.0, latency_s=1.7),
            ALL,
            QUIET,
            4,
            Reason.LATENCY_GUARD,
            {"latency": None},
        ),
        # every ask 1 and each replica above it idle for an hour: down to 1 (no halving steps)
        (
            "all low scales down",
            replace(BUSY, queue_requests=1.0, tokens_per_s=10.0, gpu_util_percent=5.0, latency_s=0.2),
            ALL,
            QUIET,
            1,
            Reason.QUEUE,
            {"queue": 1, "gpu": 1},
        ),
        # the same without any history: how long each replica has been idle is unknown, so none goes
        (
            "no history keeps the fleet",
            replace(BUSY, queue_requests=1.0, tokens_per_s=10.0, gpu_util_percent=5.0, latency_s=0.2),
            ALL,
            State(),
            4,
            Reason.KEEP_WARM,
            {"queue": 1},
        ),
        # one signal missing: the others may ask for more, never for less than current
        (
            "missing holds",
            replace(BUSY, queue_requests=None, tokens_per_s=0.0, gpu_util_percent=0.0, latency_s=0.1),
            ALL,
            QUIET,
            4,
            Reason.HOLD_MISSING,
            {"queue": None, "tokens": 0},
        ),
        (
            "missing does not cap growth",
            replace(BUSY, queue_requests=None, tokens_per_s=9000.0),
            ALL,
            QUIET,
            9,
            Reason.TOKENS,
            {"tokens": 9},
        ),
        # unreadable pods make totals lower bounds: no scale-down
        (
            "unreadable pod holds",
            replace(
                BUSY,
                queue_requests=5.0,
                tokens_per_s=0.0,
                gpu_util_percent=0.0,
                latency_s=0.1,
                unreadable_pods=1,
            ),
            ALL,
            QUIET,
            4,
            Reason.HOLD_MISSING,
            {"queue": 1},
        ),
        (
            "zero pods, no demand",
            Signals(current_replicas=0, ready_replicas=0),
            ALL,
            State(),
            0,
            Reason.AT_ZERO,
            {},
        ),
        (
            "gpu with no ready pods is missing",
            Signals(current_replicas=2, ready_replicas=0, gpu_util_percent=50.0),
            {"backend": "vllm", "deployment": "x", "targetGpuUtilization": "50"},
            State(),
            2,
            Reason.NO_DATA,
            {"gpu": None},
        ),
    ],
)
def test_decide_table(
    name: str,
    signals: Signals,
    metadata: dict[str, str],
    state: State,
    desired: int,
    reason: Reason,
    asks: dict[str, int | None],
) -> None:
    decision = decide(signals, state, parse_metadata(metadata), NOW_S)
    assert (decision.desired_replicas, decision.reason) == (desired, reason), (name, decision.to_dict())
    for signal, ask in asks.items():
        verdict = decision.verdict(SignalName(signal))
        assert verdict is not None and verdict.desired_replicas == ask, (name, signal, verdict)
    assert decision.active == (decision.valid and desired > 0)
    assert decision.now_s == NOW_S


def test_a_scale_down_reports_every_floor_it_met() -> None:
    signals = replace(BUSY, queue_requests=1.0, tokens_per_s=None, gpu_util_percent=5.0, latency_s=1.7)
    d = decide(signals, QUIET, parse_metadata(ALL), NOW_S)
    assert d.reason == Reason.HOLD_MISSING and d.desired_replicas == 4
    kinds = {f.kind for f in d.floors}
    assert {FloorKind.MISSING_DATA, FloorKind.LATENCY_GUARD} <= kinds
    guard = d.floor(FloorKind.LATENCY_GUARD)
    assert guard is not None and guard.replicas == 4


@pytest.mark.parametrize(
    ("source", "warned"),
    [
        (ReplicaSource.METRICS, True),
        (ReplicaSource.KUBERNETES, False),
        (ReplicaSource.KUBE_STATE_METRICS, False),
    ],
)
def test_zero_inferred_from_absent_series_says_so(source: ReplicaSource, warned: bool) -> None:
    """With only the pods' own metrics, "no series" may be "not scraped": explain must say it cannot tell."""
    state = State(replica_source=source)
    decision = decide(Signals(current_replicas=0, ready_replicas=0), state, parse_metadata(ALL), NOW_S)
    assert (decision.desired_replicas, decision.reason) == (0, Reason.AT_ZERO)
    notes = dict(decision.notes)
    assert ("at_zero" in notes) == warned
    if warned:
        assert "PodMonitor" in notes["at_zero"]


def test_no_usable_signal_is_not_a_decision() -> None:
    signals = Signals(current_replicas=3, ready_replicas=3)
    decision = decide(signals, State(), parse_metadata(ALL), NOW_S)
    assert not decision.valid and not decision.active
    assert (decision.reason, decision.reason_note) == (Reason.NO_DATA, "queue, tokens, gpu, latency missing")
    assert all(v.status == Status.MISSING for v in decision.signals)
    assert decision.desired_replicas == 3  # what KEDA's fallback sees is never a scale-down


def test_unknown_pod_count_with_no_data_is_not_a_decision() -> None:
    decision = decide(
        Signals(current_replicas=None, ready_replicas=None), State(), parse_metadata(ALL), NOW_S
    )
    assert not decision.valid


def test_decision_carries_every_configured_signal_in_order() -> None:
    decision = decide(BUSY, QUIET, parse_metadata(ALL), NOW_S)
    assert [v.signal.value for v in decision.signals] == ["queue", "tokens", "gpu", "latency"]
    assert [v.value for v in decision.signals] == [35.0, 2500.0, 90.0, 1.0]
    out = decision.to_dict()
    assert out["signals"]["gpu"] == {"value": 90.0, "target": 80.0, "desired_replicas": 5, "status": "ok"}
    assert (out["desired_replicas"], out["reason"], out["phase"]) == (5, "gpu", "serving")
    assert out["details"]["replica_source"] == "kubernetes"
    assert out["capacity"]["source"] == "prior"


def test_decide_is_deterministic_and_pure() -> None:
    config = parse_metadata(ALL)
    assert decide(BUSY, QUIET, config, NOW_S) == decide(BUSY, QUIET, config, NOW_S)


def test_phases() -> None:
    config = parse_metadata({**ALL, "activationQuery": 'sum(gateway{namespace="ml"})'})
    at_zero = decide(Signals(0, 0), State(activation_value=0.0), config, NOW_S)
    starting = decide(Signals(3, 0), State(warming_replicas=3, warming_ages_s=(10.0,) * 3), config, NOW_S)
    warming = decide(
        replace(BUSY, current_replicas=6),
        State(warming_replicas=2, warming_ages_s=(10.0, 10.0)),
        config,
        NOW_S,
    )
    serving = decide(BUSY, QUIET, config, NOW_S)
    assert [d.phase for d in (at_zero, starting, warming, serving)] == [
        Phase.AT_ZERO,
        Phase.STARTING,
        Phase.WARMING,
        Phase.SERVING,
    ]


def test_verdicts_without_state() -> None:
    verdicts = evaluate_signals(BUSY, parse_metadata(ALL))
    assert [v.desired_replicas for v in verdicts] == [4, 3, 5, None]


@pytest.mark.parametrize(
    ("total", "per", "want"),
    [(0.0, 1.0, 0), (0.3, 0.1, 3), (10.0, 10.0, 1), (10.01, 10.0, 2), (35.0, 10.0, 4), (1e-12, 1.0, 0)],
)
def test_ceil_ratio(total: float, per: float, want: int) -> None:
    assert ceil_ratio(total, per) == want


GPU_AND_QUEUE = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "4",
    "targetGpuUtilization": "50",
}


@pytest.mark.parametrize(
    ("unconfigured", "queue", "desired", "gpu_status"),
    [
        # GPU missing for a moment: it holds the 4 replicas the queue (8 at 4 -> 2) would shrink
        (frozenset(), 8.0, 4, Status.MISSING),
        # GPU absent longer than the staleness bound while the queue is measured: a configuration problem,
        # reported; it holds nothing, and the fleet follows the queue (an hour at 2: 4 -> 2)
        (frozenset({SignalName.GPU}), 8.0, 2, Status.UNCONFIGURED),
        # ... but with nothing else measured it stays missing: no data is never zero
        (frozenset({SignalName.GPU}), None, 4, Status.MISSING),
    ],
)
def test_a_signal_absent_for_good_is_a_configuration_problem_not_a_hold(
    unconfigured: frozenset[SignalName], queue: float | None, desired: int, gpu_status: Status
) -> None:
    signals = Signals(current_replicas=4, ready_replicas=4, queue_requests=queue, unconfigured=unconfigured)
    quiet = State(history={Measure.QUEUE: series([8.0] * 240)})
    decision = decide(signals, quiet, parse_metadata(GPU_AND_QUEUE), NOW_S)
    gpu = decision.verdict(SignalName.GPU)
    assert gpu is not None and gpu.status == gpu_status
    if queue is None:
        assert not decision.valid  # all missing: UNAVAILABLE, KEDA's fallback
        return
    assert decision.desired_replicas == desired
    if gpu_status == Status.UNCONFIGURED:
        assert (
            decision.to_dict()["details"]["unconfigured"] == ["gpu"] and "configuration problem" in gpu.note
        )


@pytest.mark.parametrize(
    ("kv", "desired", "reason"),
    [
        # queue 3 / 10 asks 1 of the 4 replicas: the KV cache decides whether they may go
        (None, 1, Reason.QUEUE),
        (0.5, 1, Reason.QUEUE),
        (0.9, 4, Reason.KV_CACHE),
        (0.97, 4, Reason.KV_CACHE),
    ],
)
def test_a_nearly_full_kv_cache_holds_the_fleet(kv: float | None, desired: int, reason: Reason) -> None:
    signals = Signals(current_replicas=4, ready_replicas=4, queue_requests=3.0, kv_cache_fraction=kv)
    meta = {"backend": "triton", "deployment": "trt", "targetQueuePerReplica": "10", "predictive": "false"}
    d = decide(signals, QUIET, parse_metadata(meta), NOW_S)
    assert (d.desired_replicas, d.reason) == (desired, reason), d.to_dict()
    assert (d.floor(FloorKind.KV_CACHE) is not None) == (kv is not None and kv >= 0.9)


def test_source_notes_are_in_the_decisions_notes() -> None:
    signals = replace(
        BUSY, source_notes={"shape": "Triton TensorRT-LLM (in-flight batching): set by tritonBackend"}
    )
    d = decide(signals, QUIET, parse_metadata(ALL), NOW_S)
    assert ("shape", "Triton TensorRT-LLM (in-flight batching): set by tritonBackend") in d.notes


# One Ready replica and a projection of 1.1 (just over it); the SLO is 1 s, the attainment target 0.99.
_ROOM_SLO = {"backend": "vllm", "deployment": "llama", "latencySloSeconds": "1"}


@pytest.mark.parametrize(
    ("p99_s", "attainment", "requests", "projected", "holds"),
    [
        (0.64, 1.0, 500.0, 1.1, True),  # p99 0.64 s of 1 s, all in time: a rounding, hold at 1
        (0.79, 0.995, 500.0, 1.2, True),  # well under the SLO and the target met
        (0.89, 0.995, 500.0, 1.1, True),  # under 0.95 of the SLO: the burst's tail, not a fleet too small
        (0.97, 0.995, 500.0, 1.1, False),  # the tail is at the SLO: scale up
        (0.64, 0.97, 500.0, 1.1, False),  # the target was missed
        (0.46, 1.0, 500.0, 1.2513, True),  # flash-crowd-s1 at 942 s: one replica served the crowd in time
        (0.64, 1.0, 500.0, 1.6, False),  # more than half a replica over: demand, not rounding
        (0.64, 1.0, 19.0, 1.1, False),  # too few requests (under 20) to say latency has room
        (0.64, 1.0, 500.0, 0.9, False),  # not over the fleet at all: nothing to hold
    ],
)
def test_latency_has_room_holds_a_rounding_over_the_ready_fleet(
    p99_s: float, attainment: float, requests: float, projected: float, holds: bool
) -> None:
    from scaler.core.decision import _latency_has_room
    from scaler.core.projection import Projection

    signals = Signals(
        current_replicas=1,
        ready_replicas=1,
        latency_s=p99_s,
        latency_attainment=attainment,
        latency_requests=requests,
    )
    projection = Projection(90.0, 8.0, 8.0, 0.0, "engine", projected)
    assert _latency_has_room(signals, parse_metadata(_ROOM_SLO), projection, 1) is holds


@pytest.mark.parametrize(
    ("latency_ask", "projected", "kept"),
    [
        (2, 0.77, False),  # the Ready replica drains the burst within the horizon: no ask, a guard
        (2, 1.4, True),  # the projection needs more than the Ready fleet: latency's ask stands
        (1, 0.77, True),  # not beyond the Ready fleet: nothing to drop
        (None, 0.77, True),  # no ask
    ],
)
def test_latency_asks_beyond_the_ready_fleet_only_when_the_projection_falls_short(
    latency_ask: int | None, projected: float, kept: bool
) -> None:
    from scaler.core.decision import SignalVerdict, _latency_drains_in_time
    from scaler.core.projection import Projection

    v = SignalVerdict(SignalName.LATENCY, 1.16, 1.0, latency_ask, Status.OK, "p99")
    out = _latency_drains_in_time(v, Projection(75.0, 8.0, 8.0, 2.0, "engine", projected), ready=1)
    if kept:
        assert out == v
    else:
        assert (out.desired_replicas, out.status) == (None, Status.GUARD)
        assert "drain the backlog" in out.note and "75 s horizon" in out.note


@pytest.mark.parametrize(
    ("samples", "shown", "forecast", "desired", "want"),
    [
        # the conversation trace at 6x, seed 3, at 150 s: the first learned fit (8 busy steps) asked 4 of 7
        # at 31.4/s; a minute had shown 4.87 per replica, so at most 6.09 each: 31.4 / 6.09 = 5.2 -> 6
        (8, 4.87, 31.4, 4, 6),
        (16, 4.87, 31.4, 4, None),  # four minutes of busy steps: the fit alone
        (0, 4.87, 31.4, 4, None),  # the prior's costs (slow on purpose): nothing to bound
        (8, 4.87, 31.4, 6, None),  # the model's own ask already keeps each replica within it
        (8, 4.87, 60.0, 4, 7),  # never above the fleet there is (10 would be a scale-up)
        (8, 10.0, 31.4, 4, None),  # 31.4 / 12.5 = 2.5 -> 3: the model's 4 is within what was shown
        (8, None, 31.4, 4, None),  # nothing shown yet: the model alone
    ],
)
def test_a_thin_fit_scales_down_no_replica_far_beyond_what_a_minute_showed(
    samples: int, shown: float | None, forecast: float, desired: int, want: int | None
) -> None:
    from scaler.core.capacity import CapacitySource, CostModel
    from scaler.core.decision import _demonstrated_floor
    from scaler.core.projection import Projection

    source = CapacitySource.LEARNED if samples else CapacitySource.PRIOR
    cost = CostModel(0.02, 0.00014, 0.000044, source, samples, 15.0 * samples)
    capacity = Capacity(cost, 1000.0, 200.0, True, 0.1, 0.65, 9.2, "", shown, 7 if shown else 0)
    projection = Projection(90.0, forecast, forecast, 0.0, "engine", forecast / 9.2)
    got = _demonstrated_floor(projection, capacity, desired, 7)
    assert (got.replicas if got is not None else None) == want
    if got is not None:
        assert got.kind == FloorKind.DEMONSTRATED and f"rests on {samples} busy steps" in got.why
    assert _demonstrated_floor(None, capacity, desired, 7) is None


def _steady_engine(steps: int, ready: float = 7.0) -> dict[Measure, Series]:
    """A settled fleet of ``ready`` replicas on the FP8 profile's costs (a = 20 ms, b = 0.14 ms, c = 44 us)
    at the conversation mix (1,155 prompt and 211 output tokens: 0.080 s of work a request), its load
    rising from utilisation 0.30 to 0.36, the iterations following T = a / (1 - rho) exactly."""
    times = tuple(NOW_S - (steps - 1 - i) * 15.0 for i in range(steps))
    rho = np.linspace(0.30, 0.36, steps)
    return engine_series(times, rho, 1155.0, 211.0, ready, (0.02, 0.00014, 44e-6))


@pytest.mark.parametrize(
    ("steps", "samples", "desired", "reason"),
    [
        # 12 steps, the first 4 not yet settled: the fit rests on 8. The model serves 7.6 requests/s a
        # replica, a minute showed 4.48 (31.4/s on 7); the forecast 33.5/s is 4.4 replicas by the model,
        # and 33.5 / (1.25 x 4.48) = 6.0 by what was shown: 7 -> 6, not 7 -> 5
        (12, 8, 6, Reason.DEMONSTRATED),
        # 20 steps: 16 samples, four minutes of load under the fit: the model alone, 33.5 / 7.9 = 4.2 -> 5
        (20, 16, 5, Reason.DEMAND),
    ],
)
def test_a_scale_down_on_a_thin_fit_stops_near_what_a_minute_showed(
    steps: int, samples: int, desired: int, reason: Reason
) -> None:
    history = _steady_engine(steps)
    served = history[Measure.REQUESTS]
    # every request of every minute within the SLO (the first minute of history has no full window yet)
    windows = tuple(
        LatencyWindow(t, 7.0, v * 60.0, (0.25, 1.0, float("inf")), (v * 60.0,) * 3)
        for t, v in zip(served.times_s, served.values, strict=True)
        if t >= served.times_s[0] + 60.0
    )
    now = {m: float(v.values[-1]) for m, v in history.items()}
    signals = Signals(
        current_replicas=7,
        ready_replicas=7,
        queue_requests=now[Measure.RUNNING],
        latency_s=0.2,
        running_requests=now[Measure.RUNNING],
        waiting_requests=0.0,
        requests_per_s=now[Measure.REQUESTS],
        prompt_tokens_per_s=now[Measure.PROMPT_TOKENS],
        generation_tokens_per_s=now[Measure.GENERATION_TOKENS],
        step_s=now[Measure.STEP_S],
    )
    meta = {
        "backend": "vllm",
        "deployment": "llama",
        "latencySloSeconds": "1",
        "latencyMetric": "ttft",
        "coldStartSeconds": "60",
    }
    state = State(history=history, latency_windows=windows, replica_source=ReplicaSource.KUBERNETES)
    d = decide(signals, state, parse_metadata(meta), NOW_S)
    assert d.capacity is not None and d.capacity.cost.samples == samples
    assert d.capacity.demonstrated_per_s == pytest.approx(4.48, abs=0.01)
    assert (d.desired_replicas, d.reason) == (desired, reason), d.to_dict()
    assert (d.floor(FloorKind.DEMONSTRATED) is not None) == (reason == Reason.DEMONSTRATED)


class _PerReplica:
    """What reactive_needs reads of a Capacity: requests per second one replica serves."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s

    def replicas_for(self, requests_per_s: float) -> float:
        return requests_per_s / self.per_s


def _ask_history_by_loop(
    verdicts: tuple[SignalVerdict, ...], state: State, per_s: float | None
) -> list[tuple[float, float]]:
    """ask_history as it was written before numpy, step by step: the reference it must equal."""
    by_time: dict[float, float] = {}
    served = state.history.get(Measure.REQUESTS)
    if per_s is not None and served is not None:
        for t, v in zip(served.times_s, served.values, strict=True):
            by_time[t] = max(by_time.get(t, 0.0), max(0.0, v) / per_s)
    for v in verdicts:
        measure = {SignalName.QUEUE: Measure.QUEUE, SignalName.TOKENS: Measure.TOKENS}.get(v.signal)
        history = state.history.get(measure) if measure is not None else None
        if history is None or v.status != Status.OK:
            continue
        for t, value in zip(history.times_s, history.values, strict=True):
            by_time[t] = max(by_time.get(t, 0.0), float(ceil_ratio(value, v.target)))
    return sorted(by_time.items())


@pytest.mark.parametrize("seed", range(6))
def test_ask_history_equals_the_step_by_step_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = NOW_S - 15.0 * np.arange(240)[::-1]
    history = {
        # served requests on the whole grid, the queue on a later part of it, tokens on a shifted grid
        Measure.REQUESTS: Series(grid, rng.gamma(1.0, 3.0, 240)),
        Measure.QUEUE: Series(grid[100:], np.round(rng.gamma(0.7, 9.0, 140))),
        Measure.TOKENS: Series(grid[::2] + 7.5, rng.gamma(1.2, 900.0, 120)),
    }
    state = State(history=history)
    verdicts = (
        SignalVerdict(SignalName.QUEUE, 3.0, 4.0, 1, Status.OK),
        SignalVerdict(SignalName.TOKENS, 800.0, 1000.0, 1, Status.OK if seed % 2 else Status.MISSING),
    )
    for per_s in (None, 2.5):
        capacity = cast(Capacity, _PerReplica(per_s)) if per_s is not None else None
        got = ask_history(verdicts, state, capacity)
        want = _ask_history_by_loop(verdicts, state, per_s)
        assert list(zip(got.times_s, got.values, strict=True)) == want


def test_window_loads_read_arrivals_utilisation_and_the_backlog_a_window_began_with() -> None:
    """Two minutes on 2 Ready replicas, 0.2 s of work a request, rho* 0.8. The first served 300 (5/s) while
    the requests waiting (queue 10 -> 40, gateway 0 -> 20) grew by 50: arrivals (300 + 50) / 60 = 5.83/s,
    5.83 x 0.2 / 0.8 = 1.46 replicas, u 5 x 0.2 / 2 = 0.5, saturated (50 > 30), carried 10. The second began
    with 60 waiting and drained them: carried 60, not saturated."""
    cap = Capacity(PRIOR, 1000.0, 250.0, True, 0.2, 0.8, 4.0)
    bounds, counts = (1.0, float("inf")), (300.0, 300.0)
    windows = (
        LatencyWindow(NOW_S - 60, 2.0, 300.0, bounds, counts),
        LatencyWindow(NOW_S, 2.0, 300.0, bounds, counts),
    )
    history = {
        Measure.QUEUE: series([10.0, 10.0, 10.0, 10.0, 40.0, 30.0, 20.0, 10.0, 0.0]),
        Measure.GATEWAY: series([0.0, 0.0, 0.0, 0.0, 20.0, 10.0, 0.0, 0.0, 0.0]),
    }
    first, second = window_loads(State(history=history, latency_windows=windows), cap)
    assert (first.need, first.utilisation, first.saturated, first.carried) == pytest.approx(
        (350 / 60 * 0.2 / 0.8, 0.5, True, 10.0)
    )
    assert (second.saturated, second.carried) == (False, 60.0)
