"""Scenario tests of the pure core with cold start: time is stepped explicitly, nothing sleeps."""

from __future__ import annotations

import math

import pytest

from scaler.core.coldstart import estimate_cold_start
from scaler.core.config import parse_metadata
from scaler.core.decision import FloorKind, Phase, Reason, decide
from scaler.core.signals import Measure, SignalName, Signals
from scaler.core.state import LatencyWindow, ReplicaSource, Series, State

NOW_S = 1_700_000_000.0
STEP_S = 15.0
GATEWAY = 'sum(gateway_pending{namespace="ml"})'
BASE = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "8", "coldStartSeconds": "60"}
SLO_ONLY = {
    "backend": "vllm",
    "deployment": "llama",
    "latencySloSeconds": "1",
    "latencyMetric": "ttft",
    "coldStartSeconds": "60",
    "activationQuery": GATEWAY,
}


def series(values: list[float], step_s: float = STEP_S, end_s: float = NOW_S) -> Series:
    """Values ending at ``end_s``, one every ``step_s``."""
    n = len(values)
    return Series(tuple(end_s - (n - 1 - i) * step_s for i in range(n)), tuple(values))


def at_zero(**state: object) -> tuple[Signals, State]:
    return Signals(current_replicas=0, ready_replicas=0), State(**state)  # type: ignore[arg-type]


# -- from zero -------------------------------------------------------------------------------------------
def test_burst_at_zero_is_right_sized_for_backlog_plus_the_horizon_of_arrivals() -> None:
    config = parse_metadata({**BASE, "activationQuery": GATEWAY})
    # The gateway queue grew 0 -> 24 over the last minute: 0.4 requests/s. (5 s steps, 13 points.)
    history = series([2.0 * i for i in range(13)], step_s=5.0)
    signals, state = at_zero(activation_value=24.0, activation_history=history)
    d = decide(signals, state, config, NOW_S)
    # The queue target guards the first step: ceil((24 + 0.4 x 75) / 8) = 7 over the 60 s cold start plus
    # the 15 s control delay, not 1.
    assert (d.desired_replicas, d.active, d.reason, d.phase) == (7, True, Reason.FROM_ZERO, Phase.AT_ZERO)
    assert d.projection is not None and d.projection.arrivals_per_s == pytest.approx(0.4)
    assert d.projection.horizon_s == 75.0 and d.projection.source == "activationQuery"


def test_from_zero_with_the_slo_alone_is_sized_in_work() -> None:
    """Without a queue target the first step is work: 240 requests waiting, 4/s arriving, the prior's
    0.18 s per request (1,000 prompt x 100 us + 200 output x 0.4 ms) at utilisation 0.8 over 75 s:
    (4 x 0.18 + 240 x 0.18 / 75) / 0.8 = 1.62 -> 2 replicas (a queue target of 22 would have asked 25)."""
    history = series([240.0 - 20.0 * (12 - i) for i in range(13)], step_s=5.0)  # +4/s
    d = decide(*at_zero(activation_value=240.0, activation_history=history), parse_metadata(SLO_ONLY), NOW_S)
    assert (d.desired_replicas, d.reason) == (2, Reason.FROM_ZERO)
    assert d.projection is not None and d.projection.replicas == pytest.approx(1.62, rel=0.01)
    assert d.capacity is not None and d.capacity.cost.source.value == "prior"


@pytest.mark.parametrize(
    "values",
    [
        [0.0] * 12 + [24.0],  # a burst just now
        [0.0] * 6 + [24.0] * 7,  # a burst half a minute ago, nothing since: most pairs straddle the step
        [0.0, 0.0, 24.0],  # a burst in a short history
    ],
)
def test_a_burst_at_zero_is_backlog_not_a_rate(values: list[float]) -> None:
    config = parse_metadata({**BASE, "activationQuery": GATEWAY})
    history = series(values, step_s=5.0)
    d = decide(*at_zero(activation_value=24.0, activation_history=history), config, NOW_S)
    assert (d.desired_replicas, d.reason) == (3, Reason.FROM_ZERO)  # ceil(24 / 8)
    assert d.projection is not None and d.projection.arrivals_per_s == 0.0


@pytest.mark.parametrize(
    ("metadata", "value", "active"),
    [
        ({"activationQuery": 'x{namespace="ml"}'}, 0.0, False),  # threshold 0: zero is no demand
        ({"activationQuery": 'x{namespace="ml"}'}, 0.5, True),
        ({"activationQuery": 'x{namespace="ml"}', "activationThreshold": "3"}, 3.0, False),
        ({"activationQuery": 'x{namespace="ml"}', "activationThreshold": "3"}, 3.5, True),
        ({"activationQuery": 'x{namespace="ml"}'}, None, False),  # no data at zero: stays at zero
    ],
)
def test_activation_threshold(metadata: dict[str, str], value: float | None, active: bool) -> None:
    d = decide(*at_zero(activation_value=value), parse_metadata({**BASE, **metadata}), NOW_S)
    assert d.valid and d.active is active and (d.desired_replicas >= 1) is active


def test_without_activation_query_the_backend_queue_activates() -> None:
    signals = Signals(current_replicas=0, ready_replicas=0, queue_requests=5.0, waiting_requests=5.0)
    d = decide(signals, State(), parse_metadata(BASE), NOW_S)
    assert (d.desired_replicas, d.active, d.reason) == (1, True, Reason.FROM_ZERO)


# -- the first step loading ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("age_s", "pending", "desired"),
    [
        (10.0, 24.0, 6),  # ceil((24 + 0.4 x 50) / 8) = 6: arrivals until the first pod is Ready
        (40.0, 36.0, 6),  # ceil((36 + 0.4 x 20) / 8) = 6: the first step already planned for these
        (50.0, 100.0, 13),  # the gateway grew faster than planned: ceil((100 + 0.4 x 10) / 8) = 13
        (40.0, 4.0, 3),  # demand fell: never below the pods already loading
    ],
)
def test_first_step_still_loading_keeps_sizing_from_the_waiting_demand(
    age_s: float, pending: float, desired: int
) -> None:
    """Pods exist but none is Ready: no pod reports metrics, yet the gateway's demand is known. The answer
    is a from-zero sizing over the time left until the first pod is Ready, not no-data."""
    config = parse_metadata({**BASE, "activationQuery": GATEWAY})
    history = series([2.0 * i for i in range(13)], step_s=5.0)  # 0.4 requests/s
    signals = Signals(current_replicas=3, ready_replicas=0)
    state = State(
        activation_value=pending,
        activation_history=history,
        warming_replicas=3,
        warming_ages_s=(age_s,) * 3,
        replica_source=ReplicaSource.KUBERNETES,
    )
    d = decide(signals, state, config, NOW_S)
    assert (d.valid, d.active, d.reason, d.phase) == (True, True, Reason.FROM_ZERO, Phase.STARTING)
    assert d.desired_replicas == max(3, desired)


@pytest.mark.parametrize("age_s", [10.0, 40.0, 58.0])
def test_the_backlog_drains_over_the_full_horizon_however_close_the_first_step_is(age_s: float) -> None:
    """SLO-only metadata, 240 requests waiting at the gateway, 4/s arriving, the first pod loading: a
    replica asked now is Ready a full horizon (60 s + 15 s) from now, so the backlog drains over that,
    whatever the first pod's age: (4 x 0.18 + 240 x 0.18 / 75) / 0.8 = 1.62 -> 2 replicas, as at zero.
    Over the 2 s the 58 s old pod has left it was (4 x 0.18 + 240 x 0.18 / 2) / 0.8 = 27.9 -> 28: a
    cold start of 28 replicas for a backlog the first one and one more clear (idle-gaps-s1 asked 15)."""
    history = series([240.0 - 20.0 * (12 - i) for i in range(13)], step_s=5.0)  # +4/s
    signals = Signals(current_replicas=1, ready_replicas=0)
    state = State(
        activation_value=240.0,
        activation_history=history,
        warming_replicas=1,
        warming_ages_s=(age_s,),
        replica_source=ReplicaSource.KUBERNETES,
    )
    d = decide(signals, state, parse_metadata(SLO_ONLY), NOW_S)
    assert (d.desired_replicas, d.reason, d.phase) == (2, Reason.FROM_ZERO, Phase.STARTING)
    assert d.projection is not None and d.projection.horizon_s == 75.0
    assert d.projection.replicas == pytest.approx(1.62, rel=0.01)


def test_first_step_loading_with_unknown_demand_is_not_a_decision() -> None:
    config = parse_metadata({**BASE, "activationQuery": GATEWAY})
    state = State(activation_value=None, warming_replicas=3, warming_ages_s=(20.0,) * 3)
    d = decide(Signals(current_replicas=3, ready_replicas=0), state, config, NOW_S)
    assert not d.valid and d.desired_replicas == 3  # KEDA's fallback, never a scale-down


@pytest.mark.parametrize(
    ("warming", "ages", "desired", "held"),
    [
        (0, (), 8, False),  # nothing loading: 4 Ready at 2x the SLO ask 8
        (2, (20.0, 20.0), 6, True),  # 2 loading: latency waits for them (6 = 4 Ready + 2 coming)
        (2, (200.0, 200.0), 8, False),  # stuck for over two cold starts: no longer counted as coming
    ],
)
def test_latency_does_not_compound_while_replicas_load(
    warming: int, ages: tuple[float, ...], desired: int, held: bool
) -> None:
    config = parse_metadata({**BASE, "latencySloSeconds": "1", "latencyMetric": "ttft"})
    signals = Signals(current_replicas=4 + warming, ready_replicas=4, queue_requests=8.0, latency_s=2.0)
    state = State(warming_replicas=warming, warming_ages_s=ages, replica_source=ReplicaSource.KUBERNETES)
    d = decide(signals, state, config, NOW_S)
    latency = d.verdict(SignalName.LATENCY)
    assert latency is not None and latency.now_replicas == 8  # what latency alone measured
    assert latency.desired_replicas == desired and ("already coming" in latency.note) is held
    assert d.desired_replicas == max(desired, 4 + warming)


def test_warming_replicas_count_as_capacity_coming() -> None:
    """7 replicas loading for a queue of 54 at 8 each: they absorb it, no pile-on at any age."""
    config = parse_metadata(BASE)
    for age_s in (0.0, 15.0, 30.0, 45.0):  # stepped through the warm-up
        signals = Signals(current_replicas=7, ready_replicas=0, queue_requests=54.0)
        state = State(warming_replicas=7, warming_ages_s=(age_s,) * 7)
        d = decide(signals, state, config, NOW_S + age_s)
        assert d.desired_replicas == 7, (age_s, d.to_dict())  # ceil(54 / 8): the warming 7 are it


# -- the projection: demand as work ----------------------------------------------------------------------
def _serving(requests_per_s: float, waiting: float, ready: int, **extra: float) -> Signals:
    return Signals(
        current_replicas=ready,
        ready_replicas=ready,
        requests_per_s=requests_per_s,
        waiting_requests=waiting,
        running_requests=min(128.0 * ready, 20.0 * ready),
        prompt_tokens_per_s=requests_per_s * 1000.0,
        generation_tokens_per_s=requests_per_s * 200.0,
        latency_s=0.5,
        **extra,  # type: ignore[arg-type]
    )


def test_a_backlog_is_work_to_drain_not_replicas_to_hold() -> None:
    """1,200 requests waiting on one Ready replica that serves 4/s: the prior's 0.18 s each, drained over the
    75 s horizon, plus the arrivals: (4 x 0.18 + 1,200 x 0.18 / 75) / 0.8 = 4.5 -> 5 replicas. A queue
    target of 22 per replica would have asked for 55."""
    d = decide(_serving(4.0, 1200.0, 1), State(), parse_metadata(SLO_ONLY), NOW_S)
    assert d.projection is not None and d.projection.replicas == pytest.approx(4.5, rel=0.01)
    assert (d.desired_replicas, d.reason) == (5, Reason.DEMAND)


def test_the_projection_forecasts_a_ramp_over_the_horizon() -> None:
    """Served requests rising 0.01/s^2 for five minutes: the damped trend adds what the next 75 s bring."""
    ramp = [5.0 + 0.15 * i for i in range(21)]  # 5 -> 8 requests/s
    state = State(history={Measure.REQUESTS: series(ramp)})
    on = decide(_serving(8.0, 0.0, 2), state, parse_metadata(SLO_ONLY), NOW_S)
    off = decide(_serving(8.0, 0.0, 2), state, parse_metadata({**SLO_ONLY, "predictive": "false"}), NOW_S)
    assert on.projection is not None and off.projection is not None
    assert off.projection.forecast_per_s == pytest.approx(8.0)
    assert 8.0 < on.projection.forecast_per_s <= 8.0 * 1.5  # grows, bounded at +50 %
    assert on.projection.replicas > off.projection.replicas


def test_slo_only_metadata_sizes_the_fleet_from_learned_capacity() -> None:
    """With only the SLO, the capacity model decides: 12 requests/s at the prior's 0.18 s and 0.8 -> 2.7
    -> 3 replicas."""
    d = decide(_serving(12.0, 0.0, 3), State(), parse_metadata(SLO_ONLY), NOW_S)
    assert d.capacity is not None and d.capacity.requests_per_s_per_replica == pytest.approx(0.8 / 0.18)
    assert (d.desired_replicas, d.reason) == (3, Reason.DEMAND)


# -- to zero ---------------------------------------------------------------------------------------------
IDLE = Signals(current_replicas=1, ready_replicas=1, queue_requests=0.0, tokens_per_s=0.0)


def _idle_state(queue: list[float]) -> State:
    return State(history={Measure.QUEUE: series(queue)})


def test_long_idle_releases_the_last_replica() -> None:
    d = decide(IDLE, _idle_state([3.0] + [0.0] * 120), parse_metadata(BASE), NOW_S)  # 30 min idle
    assert (d.desired_replicas, d.active, d.reason) == (0, False, Reason.RELEASE)
    assert d.idle is not None and d.idle.release and d.idle.idle_s == pytest.approx(1800.0)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [({"scaleToZero": "false"}, Reason.KEEP_WARM), ({"minIdleSeconds": "3600"}, Reason.KEEP_WARM)],
)
def test_keep_warm_settings_win(extra: dict[str, str], reason: Reason) -> None:
    d = decide(IDLE, _idle_state([3.0] + [0.0] * 120), parse_metadata({**BASE, **extra}), NOW_S)
    assert (d.desired_replicas, d.active, d.reason) == (1, True, reason)


def test_short_idle_keeps_one_replica_warm_until_break_even() -> None:
    config = parse_metadata(BASE)  # a release costs one cold start of GPU time: 60 s
    outcomes = []
    for idle_steps in (2, 3, 4, 6):  # idle for 30, 45, 60, 90 s
        d = decide(IDLE, _idle_state([3.0] * 4 + [0.0] * idle_steps), config, NOW_S)
        outcomes.append(d.active)
    assert outcomes == [True, True, False, False]


def test_short_gaps_between_bursts_keep_warm_long_gaps_release_early() -> None:
    config = parse_metadata(BASE)
    # bursts of 15 s every 60 s (gaps of 45 s), idle for 30 s now: the next burst is ~15 s away
    short = [3.0, 0.0, 0.0, 0.0] * 8 + [3.0, 0.0, 0.0]
    d = decide(IDLE, _idle_state(short), config, NOW_S)
    assert (d.active, d.reason) == (True, Reason.KEEP_WARM)
    assert d.idle is not None and d.idle.expected_idle_s == pytest.approx(15.0)
    # bursts separated by 10 minutes, idle for 30 s: ~570 s more expected, more than the 60 s cold start
    long_gaps = ([3.0] + [0.0] * 40) * 4 + [3.0, 0.0, 0.0]
    d = decide(IDLE, _idle_state(long_gaps), config, NOW_S)
    assert (d.active, d.reason) == (False, Reason.RELEASE)


def test_missing_data_never_releases() -> None:
    signals = Signals(current_replicas=1, ready_replicas=1, queue_requests=None, tokens_per_s=0.0)
    # The only signal missing: no decision at all (KEDA's fallback), certainly not a release.
    d = decide(signals, _idle_state([0.0] * 200), parse_metadata(BASE), NOW_S)
    assert not d.valid and d.reason == Reason.NO_DATA
    # Another signal idle, this one missing: hold what is there.
    with_tokens = parse_metadata({**BASE, "targetTokensPerSecondPerReplica": "500"})
    d = decide(signals, _idle_state([0.0] * 200), with_tokens, NOW_S)
    assert (d.desired_replicas, d.active, d.reason) == (1, True, Reason.HOLD_MISSING)


# -- scale-down: each replica level by its own economics -------------------------------------------------
def test_a_replica_needed_less_than_a_cold_start_ago_stays() -> None:
    """The queue asked for 6 replicas 30 s ago: levels 2..6 are idle 30 s < 60 s, so the fleet holds 6."""
    signals = Signals(current_replicas=8, ready_replicas=8, queue_requests=8.0)
    state = State(history={Measure.QUEUE: series([8.0] * 200 + [40.0, 48.0, 30.0, 8.0])})
    d = decide(signals, state, parse_metadata(BASE), NOW_S)
    assert (d.desired_replicas, d.reason) == (6, Reason.KEEP_WARM)  # ceil(48 / 8): replicas 7, 8 go
    kept = d.floor(FloorKind.KEEP_WARM)
    assert kept is not None and kept.replicas == 6 and "replica 6" in kept.why


def test_levels_whose_bursts_recur_stay_the_others_go() -> None:
    """Bursts to 4 replicas every 90 s (gaps of 75 s): 30 s after the last one the next is expected in 45 s,
    less than a 60 s cold start, so level 4 stays. The same bursts every 10 minutes would let it go."""
    queue = ([32.0] + [24.0, 24.0] + [8.0] * 3) * 12 + [32.0, 24.0, 8.0]
    signals = Signals(current_replicas=4, ready_replicas=4, queue_requests=8.0)
    d = decide(signals, State(history={Measure.QUEUE: series(queue)}), parse_metadata(BASE), NOW_S)
    assert (d.desired_replicas, d.reason) == (4, Reason.KEEP_WARM)
    rare = ([32.0] + [8.0] * 39) * 5 + [32.0, 24.0, 8.0]
    d = decide(signals, State(history={Measure.QUEUE: series(rare)}), parse_metadata(BASE), NOW_S)
    assert d.desired_replicas < 4


@pytest.mark.parametrize(
    ("requests_per_s", "desired", "reason"),
    [
        # 7.1 requests/s for ten minutes at the prior's 0.8 / 0.18 = 4.44 a replica: an ask of 1.6, past
        # the half-replica band the latency-room rule holds, so 2 replicas were asked for and the second
        # was needed 15 s ago. The dip to 4 requests/s (0.9) keeps it a cold start: idle 15 s < 60 s.
        (7.1, 2, Reason.KEEP_WARM),
        # 5.8 requests/s is an ask of 1.3, inside the band: level 2 was never needed and goes at once.
        (5.8, 1, Reason.DEMAND),
    ],
)
def test_a_fraction_of_a_replica_past_the_band_needed_it(
    requests_per_s: float, desired: int, reason: Reason
) -> None:
    state = State(history={Measure.REQUESTS: series([requests_per_s] * 40 + [4.0])})
    d = decide(_serving(4.0, 0.0, 2), state, parse_metadata(SLO_ONLY), NOW_S)
    assert d.projection is not None and d.projection.replicas == pytest.approx(0.9)
    assert (d.desired_replicas, d.reason) == (desired, reason)


@pytest.mark.parametrize(
    ("age_s", "desired", "reason"), [(30.0, 8, Reason.LOADING), (200.0, 1, Reason.QUEUE)]
)
def test_no_scale_down_while_a_recent_scale_up_is_still_warming(
    age_s: float, desired: int, reason: Reason
) -> None:
    signals = Signals(current_replicas=8, ready_replicas=6, queue_requests=8.0)
    state = State(
        warming_replicas=2, warming_ages_s=(age_s, age_s), history={Measure.QUEUE: series([8.0] * 240)}
    )
    d = decide(signals, state, parse_metadata(BASE), NOW_S)
    # loading for 30 s: held at 8; stuck for 200 s (> 2 cold starts): the hour of low asks lets 7 go
    assert (d.desired_replicas, d.reason) == (desired, reason)


# -- cold start learning ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("samples", "seconds", "source"),
    [
        ((), 60.0, "prior"),
        ((90.0,), 90.0, "prior"),  # one slow start: the larger of it and the prior
        ((40.0, 42.0, 45.0, 50.0, 120.0), 92.0, "learned"),  # p90
        ((30.0, 31.0, 32.0), 31.8, "learned"),
    ],
)
def test_cold_start_estimate(samples: tuple[float, ...], seconds: float, source: str) -> None:
    est = estimate_cold_start(samples, 60.0)
    assert (est.seconds, est.source) == (pytest.approx(seconds), source)


def test_learned_cold_start_drives_the_break_even_and_the_horizon() -> None:
    state = State(
        history={Measure.QUEUE: series([3.0] + [0.0] * 6)},  # idle 90 s
        cold_start_samples_s=(100.0, 110.0, 120.0),  # p90 = 118 s > 90 s idle: keep it
        replica_source=ReplicaSource.KUBERNETES,
    )
    d = decide(IDLE, state, parse_metadata(BASE), NOW_S)
    assert d.reason == Reason.KEEP_WARM
    assert (d.cold_start.seconds, d.cold_start.source) == (pytest.approx(118.0), "learned")
    assert d.replica_source == ReplicaSource.KUBERNETES
    prior = decide(IDLE, State(history=state.history), parse_metadata(BASE), NOW_S)
    assert prior.reason == Reason.RELEASE  # with the 60 s prior, 90 s idle pays for a release


@pytest.mark.parametrize(
    ("busy_min", "desired", "reason"),
    [
        # 3 busy minutes, then 3 idle: 360 s of history < 10 cold starts (600 s) -> the last replica stays
        (3, 1, Reason.HEADROOM),
        # 17 busy minutes, then 3 idle: 20 minutes of history, nothing in it says a return costs misses,
        # idle 180 s >= the 60 s cold start -> it goes
        (17, 0, Reason.RELEASE),
    ],
)
def test_the_last_replica_stays_until_the_history_can_price_its_release(
    busy_min: int, desired: int, reason: Reason
) -> None:
    """SLO-only metadata, 1 Ready replica that served 1 request/s, every one under 0.25 s, then nothing for
    3 minutes. A short history cannot tell a lull from the end of the demand (azure-code's first minutes:
    a 40 s burst, then 144 s of nothing, then the next burst)."""
    config = parse_metadata(SLO_ONLY)
    steps_busy, steps_idle = busy_min * 4, 3 * 4
    served = series([1.0] * steps_busy + [0.0] * steps_idle)
    windows = tuple(
        LatencyWindow(NOW_S - 60.0 * i, 1.0, 60.0, (0.25, 1.0, math.inf), (60.0, 60.0, 60.0))
        for i in range(3, busy_min + 3)
    )
    signals = Signals(
        current_replicas=1,
        ready_replicas=1,
        queue_requests=0.0,
        requests_per_s=0.0,
        no_traffic=frozenset({SignalName.LATENCY}),  # no request finished: no latency to read
    )
    state = State(
        history={Measure.REQUESTS: served},
        latency_windows=windows,
        activation_value=0.0,
        replica_source=ReplicaSource.KUBERNETES,
    )
    d = decide(signals, state, config, NOW_S)
    assert (d.desired_replicas, d.reason) == (desired, reason)
    assert d.headroom is not None
    if desired:
        assert "too little to price releasing the last one" in d.headroom.why
    else:
        assert d.headroom.replicas == 0 and d.idle is not None and d.idle.release


@pytest.mark.parametrize(
    ("lull_steps", "idle_steps", "rate_window_s", "held"),
    [
        (0, 2, None, 3),  # 30 s without a request: under a cold start, 3 hold
        (0, 4, None, 1),  # 60 s >= the 60 s cold start, and no lull before: the bursts stopped, 1 stays
        (0, 12, None, 1),  # 180 s
        # a lull of 9 silent steps in the history: a gap of 150 s between requests 15 s apart
        (9, 8, None, 3),  # 120 s idle: no longer than that lull, so the bursts may still come back
        # 165 s: longer than the lull, not 2 x (300 s): lulls lengthen (the code trace's do)
        (9, 11, None, 3),
        (9, 21, None, 1),  # 315 s > 2 x 150 s
        # read from a 1 m rate, a lull under 60 s never shows: the longest is taken as at least 60 s. The
        # last nonzero step is 45 s after the last request (lag 60 - 15), so 5 silent steps are 120 s idle.
        (0, 5, 60.0, 3),  # 120 s, not over 2 x 60 s
        (0, 6, 60.0, 1),  # 135 s
    ],
)
def test_headroom_for_bursts_lapses_once_the_demand_stops(
    lull_steps: int, idle_steps: int, rate_window_s: float | None, held: int
) -> None:
    """SLO-only metadata, 2 Ready replicas that served 1 request/s for 17 minutes, each minute's 60
    requests spread evenly up to 4 s (half over the 1 s SLO: bursts 2 replicas could not drain), then
    nothing. The windows price a warm floor of several replicas; while nothing arrives they age together
    and price the same floor for an hour (40,000 requests x e^(-s / 600) fall under 50 only after 67
    minutes). The floor: reactive scaling alone (1 replica for 1 request/s) misses 246 of the 466
    age-weighted requests, 3 warm replicas none (target 0.99: 5 allowed). Once the silence is longer than
    a cold start and than twice every lull between requests the history shows, the floor keeps 1 (the
    code trace's bursts come back after lulls of 60-217 s: a lull is not the end of them)."""
    config = parse_metadata(SLO_ONLY)
    served = series([1.0] * 30 + [0.0] * lull_steps + [1.0] * 38 + [0.0] * idle_steps)
    windows = tuple(
        LatencyWindow(NOW_S - 60.0 * i, 2.0, 60.0, (0.25, 1.0, 4.0, math.inf), (15.0, 30.0, 60.0, 60.0))
        for i in range(1, 18)
    )
    signals = Signals(
        current_replicas=2,
        ready_replicas=2,
        queue_requests=0.0,
        requests_per_s=0.0,
        no_traffic=frozenset({SignalName.LATENCY}),
    )
    state = State(
        history={Measure.REQUESTS: served},
        latency_windows=windows,
        activation_value=0.0,
        replica_source=ReplicaSource.KUBERNETES,
        rate_window_s=rate_window_s,
    )
    d = decide(signals, state, config, NOW_S)
    assert d.headroom is not None
    assert (d.desired_replicas, d.headroom.replicas, d.reason) == (held, held, Reason.HEADROOM)
    if not lull_steps:
        assert d.headroom.misses_reactive == pytest.approx(246, abs=1)
    assert ("the bursts stopped" in d.headroom.why) == (held == 1)


@pytest.mark.parametrize(
    ("current_steps", "desired", "reason"),
    [
        (0, 1, Reason.SHORT_BURST),  # the burst's first scrape: no second replica
        (2, 1, Reason.SHORT_BURST),  # 30 s in: no longer than the past two
        (3, 2, Reason.DEMAND),  # 45 s in: longer than any past one, a surge: the replica is asked
    ],
)
def test_a_level_reached_only_in_bursts_over_before_a_cold_start_is_not_asked_for(
    current_steps: int, desired: int, reason: Reason
) -> None:
    """SLO-only metadata, the prior's 4.44 requests/s a replica (0.18 s of work at utilisation 0.8), 1 Ready
    replica. The served requests show two past bursts of 7 requests/s (1.58 replicas) lasting 30 s each,
    at 1 request/s between. Now 7 requests/s arrive: the projection asks 2, but a replica asked now is
    Ready in 75 s (60 s cold start + 15 s), after such a burst is over."""
    calm, spike = [1.0] * 20, [7.0] * 2
    served = series(calm + spike + calm + spike + calm + [7.0] * current_steps)
    signals = Signals(current_replicas=1, ready_replicas=1, queue_requests=0.0, requests_per_s=7.0)
    state = State(history={Measure.REQUESTS: served}, replica_source=ReplicaSource.KUBERNETES)
    d = decide(signals, state, parse_metadata(SLO_ONLY), NOW_S)
    assert d.projection is not None and d.projection.replicas == pytest.approx(7.0 / 4.44, rel=0.02)
    assert (d.desired_replicas, d.reason) == (desired, reason)
    if reason == Reason.SHORT_BURST:
        assert d.burst is not None and (d.burst.asked, d.burst.episodes, d.burst.longest_s) == (2, 2, 30.0)
        assert d.to_dict()["burst"]["replicas"] == 1
    else:
        assert d.burst is None and "burst" not in d.to_dict()
