"""The projection: demand as work over the reaction horizon, in every phase."""

from __future__ import annotations

import pytest

from scaler.core.capacity import PRIOR, Capacity
from scaler.core.projection import ceil_replicas, growth_per_s, project, reactive_needs
from scaler.core.signals import Measure, Signals
from scaler.core.state import Series, State

NOW_S = 1_700_000_000.0
# 0.2 s of work per request at utilisation 0.8: 4 requests/s per replica
CAP = Capacity(PRIOR, 1000.0, 250.0, True, 0.2, 0.8, 4.0)


def series(values: list[float], step_s: float = 15.0) -> Series:
    n = len(values)
    return Series(tuple(NOW_S - (n - 1 - i) * step_s for i in range(n)), tuple(values))


@pytest.mark.parametrize(
    ("values", "step_s", "rate"),
    [
        ([2.0 * i for i in range(13)], 5.0, 0.4),  # a gateway queue growing 2 per 5 s
        ([0.0] * 12 + [24.0], 5.0, 0.0),  # a burst just now: backlog, not a rate
        ([0.0, 0.0, 24.0], 5.0, 0.0),  # too short to tell
        ([10.0, 8.0, 6.0, 4.0, 2.0], 15.0, 0.0),  # draining: no arrivals read from a shrinking backlog
    ],
)
def test_growth_of_a_backlog(values: list[float], step_s: float, rate: float) -> None:
    assert growth_per_s(series(values, step_s), NOW_S) == pytest.approx(rate)


def test_serving_projection_is_arrivals_plus_drain_over_the_horizon() -> None:
    """10 served per second, the queue in flight growing 1/s, 60 waiting, a 75 s horizon:
    (11 x 0.2 + 60 x 0.2 / 75) / 0.8 = 2.95 replicas."""
    signals = Signals(3, 3, requests_per_s=10.0, waiting_requests=60.0)
    state = State(history={Measure.QUEUE: series([20.0 + 15.0 * i for i in range(5)])})
    p = project(signals, state, CAP, 75.0, NOW_S, predictive=False)
    assert p is not None
    assert (p.arrivals_per_s, p.backlog_requests, p.source) == (pytest.approx(11.0), 60.0, "engine")
    assert p.replicas == pytest.approx((11 * 0.2 + 60 * 0.2 / 75) / 0.8)
    assert p.ask == 3


def test_no_request_rate_is_no_projection() -> None:
    assert project(Signals(3, 3, waiting_requests=5.0), State(), CAP, 75.0, NOW_S) is None


def test_at_zero_the_demand_waiting_is_the_backlog() -> None:
    history = series([2.0 * i for i in range(13)], step_s=5.0)
    p = project(Signals(0, 0), State(), CAP, 75.0, NOW_S, at_zero_demand=(24.0, history, "activationQuery"))
    assert p is not None and p.source == "activationQuery"
    assert p.replicas == pytest.approx((0.4 * 0.2 + 24 * 0.2 / 75) / 0.8)
    assert project(Signals(0, 0), State(), CAP, 75.0, NOW_S, at_zero_demand=(None, None, "queue")) is None


def test_reactive_needs_follow_the_served_history() -> None:
    needs = reactive_needs(State(history={Measure.REQUESTS: series([4.0, 8.0, 0.0])}), CAP)
    assert list(needs.values) == pytest.approx([1.0, 2.0, 0.0])


@pytest.mark.parametrize(("x", "n"), [(0.0, 0), (0.30000000000000004 / 0.1, 3), (2.01, 3), (3.0, 3)])
def test_ceil_replicas(x: float, n: int) -> None:
    assert ceil_replicas(x) == n
