"""The headroom floor: warm replicas for bursts, from past latency windows, against the attainment target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaler.core import headroom
from scaler.core.headroom import (
    MAX_SCALE_CREDIT,
    OUTPACE_EXPONENT,
    PEAK_TO_MEAN,
    WindowLoad,
    _served_fraction,
    attainment_at,
    headroom_floor,
)
from scaler.core.state import LatencyWindow, Series

NOW_S = 1_700_000_000.0
BOUNDS = (0.25, 0.5, 1.0, 2.0, 4.0, float("inf"))


def window(end_s: float, ready: float, cumulative: tuple[float, ...]) -> LatencyWindow:
    return LatencyWindow(end_s, ready, cumulative[-1], BOUNDS, cumulative)


CALM = (100.0, 100.0, 100.0, 100.0, 100.0, 100.0)  # every request under 0.25 s
# 100 requests spread evenly up to 4 s: 25 by 1 s, 50 by 2 s, 100 by 4 s
BURST = (6.25, 12.5, 25.0, 50.0, 100.0, 100.0)


@pytest.mark.parametrize(
    ("replicas", "want"),
    [
        (2, 0.25),  # as it was: 25 of 100 within 1 s
        (4, 0.5),  # twice the replicas: latencies halve, those under 2 s now meet 1 s
        (8, 1.0),
        (1, 0.125),  # half: only those under 0.5 s
        (0, 0.0),
    ],
)
def test_attainment_scales_queueing_with_replicas(replicas: int, want: float) -> None:
    assert attainment_at(window(NOW_S, 2, BURST), replicas, 1.0) == pytest.approx(want)


def test_a_base_latency_does_not_shrink() -> None:
    # base 0.5 s: a request that took x meets with k replicas if x <= 0.5 + 0.5 k / 2; k = 4: x <= 1.5 s
    assert attainment_at(window(NOW_S, 2, BURST), 4, 1.0, base_s=0.5) == pytest.approx(0.375)


def test_the_worked_example_of_the_module() -> None:
    """Two windows of 100 requests, one calm on 8 replicas and one burst on 2, reactive asks of 2 all along,
    target 0.99 (2 misses allowed of 200): F = 8 serves the burst (4 s x 2 / 8 = 1 s); F = 7 leaves 12.5."""
    windows = [window(NOW_S - 60, 8, CALM), window(NOW_S, 2, BURST)]
    reactive = Series((NOW_S - 3600,), (2.0,))
    h = headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S)
    assert h.replicas == 8
    assert h.misses_reactive == pytest.approx(75.0 * _w(0), rel=1e-3)  # the burst window, at F = 0
    assert h.misses_at_floor == pytest.approx(0.0, abs=1e-6)
    assert "8 warm replica(s)" in h.why


def _w(age_s: float) -> float:
    import math

    from scaler.core.headroom import AGE_SCALE_S

    return math.exp(-age_s / AGE_SCALE_S)


def test_reactive_capacity_that_would_have_been_there_needs_no_floor() -> None:
    """The projection asked for 8 a horizon before the burst: it was served reactively, no headroom."""
    windows = [window(NOW_S - 60, 8, CALM), window(NOW_S, 2, BURST)]
    reactive = Series((NOW_S - 3600,), (8.0,))
    assert headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S).replicas == 0


def test_bursts_that_stop_recurring_release_their_headroom() -> None:
    """Old bursts weigh less: an hour later, 40 calm windows outweigh one burst within the 1 % budget."""
    burst = window(NOW_S - 3600, 2, BURST)
    calm = [window(NOW_S - 60 * i, 2, CALM) for i in range(40)]
    reactive = Series((NOW_S - 7200,), (2.0,))
    fresh = headroom_floor([window(NOW_S, 2, BURST), *calm[1:]], reactive, 1.0, 0.99, 90.0, NOW_S)
    old = headroom_floor([burst, *calm], reactive, 1.0, 0.99, 90.0, NOW_S)
    assert fresh.replicas > 2 and old.replicas == 0


def test_a_burst_that_came_once_twenty_minutes_ago_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """The age scale, worked: one burst on 2 replicas 20 minutes ago (weight e^-2 = 0.135 at 600 s) after
    20 calm minutes on 4 (weights summing to 9.09): 922 weighted requests, 9.2 misses allowed. Reactive
    scaling (2) leaves the burst's 75 misses x 0.135 = 10.2; 3 replicas would leave 8.5, and are not
    worth it (a replica is worth 9.2 / 4 = 2.3 misses). At the old 1200 s (weight e^-1: 27.6 misses of
    13.3 allowed) the same history held 6 replicas, 20 minutes after a burst that never came back."""
    burst = window(NOW_S - 1200, 2, BURST)
    calm = [window(NOW_S - 60 * i, 4, CALM) for i in range(20)]
    reactive = Series((NOW_S - 7200,), (2.0,))
    h = headroom_floor([burst, *calm], reactive, 1.0, 0.99, 90.0, NOW_S)
    assert h.requests == pytest.approx(922.2, abs=0.1)
    assert h.replicas == 0
    assert h.misses_at_floor == pytest.approx(75 * math.exp(-2), rel=1e-3)
    monkeypatch.setattr(headroom, "AGE_SCALE_S", 1200.0)
    assert headroom_floor([burst, *calm], reactive, 1.0, 0.99, 90.0, NOW_S).replicas == 6


def test_a_saturated_window_is_counted_against_its_throughput_not_scaled() -> None:
    """Backlog latency (a fleet too small for a minute) would ask for 30 replicas if scaled as a burst;
    its arrivals needed 4."""
    backlog = (0.0, 0.0, 0.0, 0.0, 10.0, 100.0)  # 90 % of requests waited beyond 4 s
    w = window(NOW_S, 2, backlog)
    reactive = Series((NOW_S - 3600,), (0.0,))
    scaled = headroom_floor([w], reactive, 1.0, 0.99, 90.0, NOW_S)
    loaded = headroom_floor([w], reactive, 1.0, 0.99, 90.0, NOW_S, loads=[WindowLoad(4.0, True)])
    assert scaled.replicas == MAX_SCALE_CREDIT * 2  # scaled as a burst: as far as the credit goes
    assert loaded.replicas == 4


def test_a_saturated_window_that_met_the_slo_needs_no_more_than_it_had() -> None:
    """One replica ran flat out for a burst minute (the throughput model says 1.1 were needed: at 1 it
    would serve 1 / 1.1 = 0.91, 9 misses of 100), yet its histogram shows every request within 1 s: the
    minute asks for no more than the 1 replica it had. Without this, bursts-s1 started a second replica
    after each burst (8 cold starts, 3.20 GPU-h against the static fleet's 2.33)."""
    met = (90.0, 99.0, 100.0, 100.0, 100.0, 100.0)  # all by 1 s
    w = window(NOW_S, 1, met)
    reactive = Series((NOW_S - 3600,), (0.0,))
    h = headroom_floor([w], reactive, 1.0, 0.99, 90.0, NOW_S, loads=[WindowLoad(1.1, True)])
    assert h.replicas == 1
    assert h.misses_at_floor == pytest.approx(0.0, abs=1e-9)


def test_misses_more_replicas_do_not_remove_buy_nothing() -> None:
    """A plateau (requests beyond the last bucket never meet): the floor stops where replicas stop paying."""
    tail = (50.0, 60.0, 70.0, 80.0, 90.0, 100.0)  # 10 % beyond 4 s: never fixed
    windows = [window(NOW_S - 60 * i, 2, tail) for i in range(10)]
    h = headroom_floor(windows, Series((NOW_S - 3600,), (2.0,)), 1.0, 0.99, 90.0, NOW_S)
    assert h.replicas <= MAX_SCALE_CREDIT * 2
    assert "would not pay" in h.why


def test_no_floor_over_the_budget_says_the_target_is_missed() -> None:
    """Every window had 10 % of its requests past the last bucket, which no fleet serves in time: no warm
    replica removes a miss, the priced floor is 0, and the reason says the target is missed, not met."""
    hopeless = (90.0, 90.0, 90.0, 90.0, 90.0, 100.0)
    windows = [window(NOW_S - 60 * i, 2, hopeless) for i in range(10)]
    h = headroom_floor(windows, Series((NOW_S - 3600,), (2.0,)), 1.0, 0.99, 90.0, NOW_S)
    assert h.replicas == 0
    assert h.misses_reactive == pytest.approx(0.1 * h.requests)  # ten times the 1 % budget
    assert h.why.startswith("no warm replicas: reactive scaling alone would miss ")
    assert "meets" not in h.why and "would not pay" in h.why


def test_too_few_requests_is_no_floor() -> None:
    h = headroom_floor([window(NOW_S, 1, (1.0, 1.0, 1.0, 1.0, 2.0, 2.0))], Series(), 1.0, 0.99, 90.0, NOW_S)
    assert (h.replicas, h.why) == (0, "too few requests to learn from")


def test_scale_to_zero_misses_count_only_against_no_warm_replica() -> None:
    windows = [window(NOW_S - 60 * i, 1, CALM) for i in range(5)]
    reactive = Series((NOW_S - 3600,), (0.0,))
    assert headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S).replicas == 1  # F = 0 serves nobody
    # with the reactive path serving every window, only the wake-ups are at stake: 30 misses > 5 allowed
    reactive = Series((NOW_S - 3600,), (1.0,))
    assert headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S, wake_misses=30.0).replicas == 1
    assert headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S, wake_misses=2.0).replicas == 0


@pytest.mark.parametrize(
    ("reactive_from_s", "floor"),
    [
        # the asks' history begins after every window's lookup (end - 60 s window - 90 s horizon): each
        # window stands for what was Ready in it, 1 replica that served every request under 0.25 s
        (NOW_S - 30, 0),
        # the history covers the lookups and says the ask was 0: every window is a wake from zero
        (NOW_S - 3600, 1),
    ],
)
def test_a_window_before_the_asks_history_is_served_by_what_was_ready(
    reactive_from_s: float, floor: int
) -> None:
    """Five calm minutes on 1 replica, the asks' history starting only 30 s ago (a trace that opens
    under load, a scaler just started): reading the unknown ask before it as 0 made all five look like
    wakes from zero, all missed at F = 0, and held the last replica for as long as they weighed."""
    windows = [window(NOW_S - 60 * i, 1, CALM) for i in range(5)]
    reactive = Series((reactive_from_s,), (0.0,))
    assert headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S).replicas == floor


@pytest.mark.parametrize(
    ("ready", "utilisation", "replicas", "want"),
    [
        # 6 replicas at u = 0.2, read on 3: the iteration stretch is 0.8 / 0.6 = 1.33, so requests up to
        # 0.75 s meet a 1 s SLO (18.75 of 100, between the 0.5 s and 1 s buckets), not the linear rule's 0.5 s
        (6.0, 0.2, 3.0, 0.1875),
        (6.0, 0.0, 3.0, 0.125),  # utilisation unknown: the linear rule (0.5 s: 12.5)
        # 2 replicas at u = 0.55 on 1: over 1 by the model (every request missed); the linear rule is the
        # more lenient, and near saturation the costs are least sure: half the queueing, 0.5 s
        (2.0, 0.55, 1.0, 0.125),
        (2.0, 0.4, 1.0, 0.125),  # u 0.8 on 1: stretch 0.2 / 0.6 = 0.33 < 0.5: linear
        # more replicas than served it, at u 0.2: they outpace the burst's peak from 6 x 0.2 x 3 = 3.6 on, so
        # on 12 every request meets it (the linear rule alone: latencies halve, those under 2 s: 0.5)
        (6.0, 0.2, 12.0, 1.0),
        (6.0, 0.0, 12.0, 0.5),  # utilisation unknown: the linear rule
    ],
)
def test_fewer_replicas_stretch_queueing_by_the_iteration_model_or_linearly_whichever_is_lenient(
    ready: float, utilisation: float, replicas: float, want: float
) -> None:
    w = window(NOW_S, ready, BURST)
    met = _served_fraction(w, WindowLoad(1.0, False, utilisation), np.array([replicas]), 1.0, 0.0)
    assert met[0] == pytest.approx(want)


# BURST on 2 replicas at u 0.9: the replicas outpace its peak from 2 x 0.9 x 3 = 5.4 on.
@pytest.mark.parametrize(
    ("replicas", "carried", "want"),
    [
        # linear: latencies halve, 50 of 100 within 1 s; a ((5.4 - 4) / (5.4 - 2))^2 = 0.17 share of the
        # other 50 stays late: 1 - 0.5 x 0.17 = 0.915
        (4.0, 0.0, 1.0 - 0.5 * (1.4 / 3.4) ** 2),
        # linear 0.375 (those under 1.5 s); a (2.4 / 3.4)^2 = 0.50 share of the 0.625 late stays: 0.689
        (3.0, 0.0, 1.0 - 0.625 * (2.4 / 3.4) ** 2),
        (6.0, 0.0, 1.0),  # past 5.4: none late
        (2.0, 0.0, 0.25),  # as many as served it: what it saw
        # 20 requests waiting when the window began (more than a tenth of its 100): its latencies were a
        # backlog's, read linearly (those under 2 s)
        (4.0, 20.0, 0.5),
    ],
)
def test_more_replicas_outpace_a_burst_at_peak_to_mean_times_its_utilisation_as_the_square_of_the_shortfall(
    replicas: float, carried: float, want: float
) -> None:
    assert (PEAK_TO_MEAN, OUTPACE_EXPONENT) == (3.0, 2.0)
    load = WindowLoad(2.0, False, 0.9, carried)
    met = _served_fraction(window(NOW_S, 2, BURST), load, np.array([replicas]), 1.0, 0.0)
    assert met[0] == pytest.approx(want)


def test_requests_no_replica_serves_in_time_stay_missed_past_the_burst() -> None:
    """10 of 100 beyond the last finite bound (4 s): on 6 replicas, past 5.4, 0.9 meet the SLO, not 1."""
    tail = (6.25, 12.5, 25.0, 50.0, 90.0, 100.0)
    met = _served_fraction(
        window(NOW_S, 2, tail), WindowLoad(2.0, False, 0.9), np.array([6.0, 12.0]), 1.0, 0.0
    )
    assert met == pytest.approx([0.9, 0.9])


@pytest.mark.parametrize(
    ("burst_load", "floor"),
    [
        # the module's worked example, the burst at u 0.9 on its 2 replicas. On 5 the linear reading meets
        # those under 2.5 s (62.5), and a ((5.4 - 5) / (5.4 - 2))^2 = 0.014 share of the 37.5 late stays:
        # 0.5, within the 2 allowed; on 4 a 0.17 share of 50: 8.5 (the linear reading alone needs 8)
        (WindowLoad(2.0, False, 0.9), 5),
        (WindowLoad(2.0, False, 0.9, carried=20.0), 8),  # a backlog's latencies: the linear reading's 8
        (WindowLoad(2.0, False, 0.0), 8),  # utilisation unknown: the linear reading's 8
        (None, 8),
    ],
)
def test_the_floor_buys_up_to_where_the_replicas_outpace_the_burst(
    burst_load: WindowLoad | None, floor: int
) -> None:
    windows = [window(NOW_S - 60, 8, CALM), window(NOW_S, 2, BURST)]
    reactive = Series((NOW_S - 3600,), (2.0,))
    loads = [WindowLoad(1.0, False, 0.05), burst_load] if burst_load is not None else None
    assert headroom_floor(windows, reactive, 1.0, 0.99, 90.0, NOW_S, loads=loads).replicas == floor
