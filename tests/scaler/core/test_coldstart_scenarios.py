"""Scenario tests of the pure core with cold start: time is stepped explicitly, nothing sleeps."""

from __future__ import annotations

import math

import pytest

from scaler.core.coldstart import estimate_cold_start
from scaler.core.config import parse_metadata
from scaler.core.decision import Reason, decide
from scaler.core.signals import SignalName, Signals
from scaler.core.state import ReplicaSource, Series, State

NOW_S = 1_700_000_000.0
STEP_S = 15.0
BASE = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "8", "coldStartSeconds": "60"}


def series(values: list[float], step_s: float = STEP_S, end_s: float = NOW_S) -> Series:
    """Values ending at ``end_s``, one every ``step_s``."""
    n = len(values)
    return Series(tuple(end_s - (n - 1 - i) * step_s for i in range(n)), tuple(values))


def at_zero(**state: object) -> tuple[Signals, State]:
    return Signals(current_replicas=0, ready_replicas=0), State(**state)  # type: ignore[arg-type]


# -- from zero ---------------------------------------------------------------------------------------------
def test_burst_at_zero_is_right_sized_for_backlog_plus_one_cold_start_of_arrivals() -> None:
    config = parse_metadata({**BASE, "activationQuery": 'sum(gateway_pending{namespace="ml"})'})
    # The gateway queue grew 0 -> 24 over the last minute: 0.4 requests/s. (5 s steps, 13 points.)
    history = series([2.0 * i for i in range(13)], step_s=5.0)
    signals, state = at_zero(activation_value=24.0, activation_history=history)
    d = decide(signals, state, config, NOW_S)
    # ceil((24 + 0.4 x 60) / 8) = 6, not 1
    assert (d.desired_replicas, d.active, d.reason) == (6, True, Reason.FROM_ZERO)
    assert d.details["from_zero"]["arrival_per_s"] == pytest.approx(0.4)


@pytest.mark.parametrize(
    "values",
    [
        [0.0] * 12 + [24.0],  # a burst just now
        [0.0] * 6 + [24.0] * 7,  # a burst half a minute ago, nothing since: most pairs straddle the step
        [0.0, 0.0, 24.0],  # a burst in a short history
    ],
)
def test_a_burst_at_zero_is_backlog_not_a_rate(values: list[float]) -> None:
    config = parse_metadata({**BASE, "activationQuery": 'sum(gateway_pending{namespace="ml"})'})
    history = series(values, step_s=5.0)
    d = decide(*at_zero(activation_value=24.0, activation_history=history), config, NOW_S)
    assert (d.desired_replicas, d.reason) == (3, Reason.FROM_ZERO)  # ceil(24 / 8)


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
    signals = Signals(current_replicas=0, ready_replicas=0, queue_requests=5.0)
    d = decide(signals, State(), parse_metadata(BASE), NOW_S)
    assert (d.desired_replicas, d.active, d.reason) == (1, True, Reason.FROM_ZERO)


# -- warming ------------------------------------------------------------------------------------------------
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
    config = parse_metadata({**BASE, "activationQuery": 'sum(gateway_pending{namespace="ml"})'})
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
    assert (d.valid, d.active, d.reason) == (True, True, Reason.FROM_ZERO)
    assert d.desired_replicas == max(3, desired)


def test_first_step_loading_with_unknown_demand_is_not_a_decision() -> None:
    config = parse_metadata({**BASE, "activationQuery": 'sum(gateway_pending{namespace="ml"})'})
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


def test_burst_while_warming_does_not_pile_on_when_the_queue_is_steady() -> None:
    config = parse_metadata(BASE)
    for age_s in (0.0, 15.0, 30.0, 45.0):  # stepped through the warm-up
        signals = Signals(current_replicas=7, ready_replicas=0, queue_requests=54.0)
        state = State(
            warming_replicas=7,
            warming_ages_s=(age_s,) * 7,
            demand_history={SignalName.QUEUE: series([54.0] * 8, step_s=10.0)},
        )
        d = decide(signals, state, config, NOW_S + age_s)
        assert d.desired_replicas == 7, (age_s, d.to_dict())  # ceil(54 / 8): the warming 7 absorb it


def test_queue_growing_faster_than_warming_replicas_can_absorb_asks_more_and_holds_level() -> None:
    config = parse_metadata(BASE)
    asks = []
    for age_s in (10.0, 20.0, 30.0, 40.0):  # arrivals of 2/s keep the queue growing during the warm-up
        queue_now = 54.0 + 2.0 * age_s
        history = Series(
            tuple(NOW_S + age_s - 60 + 5 * i for i in range(13)),
            tuple(queue_now - 2.0 * (60 - 5 * i) for i in range(13)),
        )
        signals = Signals(current_replicas=7, ready_replicas=0, queue_requests=queue_now)
        state = State(
            warming_replicas=7, warming_ages_s=(age_s,) * 7, demand_history={SignalName.QUEUE: history}
        )
        asks.append(decide(signals, state, config, NOW_S + age_s).desired_replicas)
    # At Ready (60 s) the queue will be 54 + 2 x 60 = 174: ceil(174 / 8) = 22, the same at every step.
    assert asks == [22, 22, 22, 22]


# -- forecast -----------------------------------------------------------------------------------------------
def _ramp_state(values: list[float]) -> State:
    return State(demand_history={SignalName.QUEUE: series(values)})


def test_forecast_of_a_ramp_sizes_for_one_cold_start_ahead() -> None:
    values = [10.0 + 1.5 * i for i in range(21)]  # +0.1 requests/s over 5 minutes, 40 now
    signals = Signals(current_replicas=4, ready_replicas=4, queue_requests=40.0)
    metadata = {**BASE, "targetQueuePerReplica": "10"}
    d = decide(signals, _ramp_state(values), parse_metadata(metadata), NOW_S)
    reach_s = 300 * (1 - math.exp(-60 / 300))  # damped: 54.4 s of the slope over a 60 s horizon
    v = d.verdict(SignalName.QUEUE)
    assert v is not None and v.forecast_value == pytest.approx(40 + 0.1 * reach_s, rel=1e-6)
    assert (v.now_replicas, d.desired_replicas) == (4, 5)
    off = decide(signals, _ramp_state(values), parse_metadata({**metadata, "predictive": "false"}), NOW_S)
    assert off.desired_replicas == 4


def test_a_steep_ramp_cannot_double_the_fleet() -> None:
    values = [10.0 + 22.5 * i for i in range(5)]  # 10 -> 100 in one minute, then a 5 minute cold start
    signals = Signals(current_replicas=10, ready_replicas=10, queue_requests=100.0)
    metadata = {**BASE, "targetQueuePerReplica": "10", "coldStartSeconds": "300"}
    d = decide(signals, _ramp_state(values), parse_metadata(metadata), NOW_S)
    v = d.verdict(SignalName.QUEUE)
    assert v is not None and v.forecast_value == pytest.approx(150.0)  # bounded at +50 %
    assert d.desired_replicas == 15 < 2 * 10


def test_a_spike_in_the_history_does_not_move_the_forecast() -> None:
    values = [20.0] * 10 + [200.0] + [20.0] * 10
    signals = Signals(current_replicas=2, ready_replicas=2, queue_requests=20.0)
    d = decide(signals, _ramp_state(values), parse_metadata({**BASE, "targetQueuePerReplica": "10"}), NOW_S)
    assert d.desired_replicas == 2


# -- to zero ------------------------------------------------------------------------------------------------
IDLE = Signals(current_replicas=1, ready_replicas=1, queue_requests=0.0, tokens_per_s=0.0)


def _idle_state(queue: list[float]) -> State:
    return State(demand_history={SignalName.QUEUE: series(queue)})


def test_long_idle_releases_the_last_replica() -> None:
    d = decide(IDLE, _idle_state([3.0] + [0.0] * 120), parse_metadata(BASE), NOW_S)  # 30 min idle
    assert (d.desired_replicas, d.active, d.reason) == (0, False, Reason.RELEASE)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [({"scaleToZero": "false"}, Reason.KEEP_WARM), ({"minIdleSeconds": "3600"}, Reason.KEEP_WARM)],
)
def test_keep_warm_settings_win(extra: dict[str, str], reason: Reason) -> None:
    d = decide(IDLE, _idle_state([3.0] + [0.0] * 120), parse_metadata({**BASE, **extra}), NOW_S)
    assert (d.desired_replicas, d.active, d.reason) == (1, True, reason)


def test_short_idle_keeps_one_replica_warm_until_break_even() -> None:
    config = parse_metadata(BASE)  # penalty 2 x 60 s = 120 s
    outcomes = []
    for idle_steps in (2, 6, 8, 9):  # idle for 30, 90, 120, 135 s
        d = decide(IDLE, _idle_state([3.0] * 4 + [0.0] * idle_steps), config, NOW_S)
        outcomes.append(d.active)
    assert outcomes == [True, True, False, False]


def test_short_gaps_between_bursts_keep_warm_long_gaps_release_early() -> None:
    config = parse_metadata(BASE)
    # bursts of 15 s every 60 s (gaps of 45 s), idle for 30 s now: the next burst is ~15 s away
    short = [3.0, 0.0, 0.0, 0.0] * 8 + [3.0, 0.0, 0.0]
    d = decide(IDLE, _idle_state(short), config, NOW_S)
    assert (d.active, d.reason) == (True, Reason.KEEP_WARM)
    assert d.details["idle"]["expected_idle_s"] == pytest.approx(15.0)
    # bursts separated by 10 minutes, idle for 30 s: ~570 s more expected, more than the 120 s penalty
    long_gaps = ([3.0] + [0.0] * 40) * 4 + [3.0, 0.0, 0.0]
    d = decide(IDLE, _idle_state(long_gaps), config, NOW_S)
    assert (d.active, d.reason) == (False, Reason.RELEASE)


def test_missing_data_never_releases() -> None:
    signals = Signals(current_replicas=1, ready_replicas=1, queue_requests=None, tokens_per_s=0.0)
    # The only signal missing: no decision at all (KEDA's fallback), certainly not a release.
    d = decide(signals, _idle_state([0.0] * 200), parse_metadata(BASE), NOW_S)
    assert not d.valid and d.reason.startswith(Reason.NO_DATA)
    # Another signal idle, this one missing: hold what is there.
    with_tokens = parse_metadata({**BASE, "targetTokensPerSecondPerReplica": "500"})
    d = decide(signals, _idle_state([0.0] * 200), with_tokens, NOW_S)
    assert (d.desired_replicas, d.active, d.reason) == (1, True, Reason.HOLD_MISSING)


# -- stabilisation ------------------------------------------------------------------------------------------
def test_no_scale_down_below_the_recent_asks() -> None:
    signals = Signals(current_replicas=8, ready_replicas=8, queue_requests=8.0)
    state = State(demand_history={SignalName.QUEUE: series([40.0, 48.0, 30.0, 8.0])})  # 48 within 60 s
    d = decide(signals, state, parse_metadata(BASE), NOW_S)
    assert (d.desired_replicas, d.reason) == (6, Reason.STABILISED)  # ceil(48 / 8)


def test_scale_down_at_most_halves_per_minute() -> None:
    signals = Signals(current_replicas=8, ready_replicas=8, queue_requests=8.0)
    state = State(
        demand_history={SignalName.QUEUE: series([8.0] * 10)},
        replica_history=series([16.0, 16.0, 8.0, 8.0]),  # it was 16 within the last minute
    )
    d = decide(signals, state, parse_metadata(BASE), NOW_S)
    assert (d.desired_replicas, d.reason) == (8, Reason.STABILISED)  # ceil(16 / 2), not 1


@pytest.mark.parametrize(("age_s", "desired"), [(30.0, 8), (200.0, 4)])
def test_no_scale_down_while_a_recent_scale_up_is_still_warming(age_s: float, desired: int) -> None:
    signals = Signals(current_replicas=8, ready_replicas=6, queue_requests=8.0)
    state = State(warming_replicas=2, warming_ages_s=(age_s, age_s))
    d = decide(signals, state, parse_metadata(BASE), NOW_S)
    # loading for 30 s: held at 8; stuck for 200 s (> 2 cold starts): halves like any other
    assert (d.desired_replicas, d.reason) == (desired, Reason.STABILISED)


# -- cold start learning -----------------------------------------------------------------------------------
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


def test_learned_cold_start_drives_the_penalty_and_shows_in_details() -> None:
    state = State(
        demand_history={SignalName.QUEUE: series([3.0] + [0.0] * 12)},  # idle 180 s
        cold_start_samples_s=(100.0, 110.0, 120.0),  # p90 = 118 s: penalty 236 s > 180 s
        replica_source=ReplicaSource.KUBERNETES,
    )
    d = decide(IDLE, state, parse_metadata(BASE), NOW_S)
    assert d.reason == Reason.KEEP_WARM
    assert d.details["cold_start_s"] == pytest.approx(118.0)
    assert (d.details["cold_start_source"], d.details["replica_source"]) == ("learned", "kubernetes")
