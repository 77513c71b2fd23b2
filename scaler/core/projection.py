"""Projection: the replicas the demand will need once capacity asked for now is Ready.

One function for every phase (at zero, starting, warming, serving). Demand is work: the rate of arriving
requests, forecast over the reaction horizon (the time until a replica asked for now would be Ready), plus
the backlog of requests not yet started, drained within that horizon; divided by what one replica serves
at the target utilisation (``capacity``). A queue is work waiting, not replicas needed: 1,200 requests
waiting for one Ready replica, 0.14 s of work each and a 90 s horizon, need 1,200 x 0.14 / 90 = 1.9
replicas of drain on top of the arrivals, not 1,200 / 22 = 55 replicas held at a queue target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scaler.core.capacity import Capacity
from scaler.core.forecast import forecast_demand, theil_sen_slope
from scaler.core.signals import Measure, Signals
from scaler.core.state import Series, State

# Delay between a change of demand and the HPA acting on it, beyond the cold start: the scrape the
# scaler reads is 0-15 s old (7.5 s on average) and the HPA syncs every 15 s (7.5 s on average).
CONTROL_DELAY_S = 15.0
# The arrival rate at zero and while the first step loads is the robust slope of the waiting demand
# over this window; fewer points or a shorter span than these cannot tell a rate from a burst.
ARRIVAL_WINDOW_S = 60.0
ARRIVAL_MIN_POINTS = 3
ARRIVAL_MIN_SPAN_S = 30.0


@dataclass(frozen=True)
class Projection:
    """The demand at the end of the reaction horizon, in requests and in replicas."""

    horizon_s: float
    arrivals_per_s: float  # now: requests served per second plus the growth of the backlog
    forecast_per_s: float  # over the horizon (a damped, bounded trend; growth only)
    backlog_requests: float  # waiting to start (engine queue, or the gateway at zero)
    source: str  # where the arrivals were read: "engine" or "activationQuery"/"queue" at zero
    replicas: float  # fractional: (forecast + backlog / horizon) / requests per replica
    forecast_bounded: bool = False

    @property
    def ask(self) -> int:
        return ceil_replicas(self.replicas)


def ceil_replicas(x: float) -> int:
    """Replicas for a fractional need; a tiny epsilon keeps float noise (3 x 0.1) from adding one."""
    return max(0, int(np.ceil(x - 1e-9)))


def _window(series: Series | None, since_s: float, now_s: float) -> tuple[np.ndarray, np.ndarray]:
    if series is None or not len(series):
        return np.empty(0), np.empty(0)
    t = np.asarray(series.times_s)
    v = np.asarray(series.values)
    keep = (t >= since_s) & (t <= now_s) & np.isfinite(v)
    return t[keep], v[keep]


def growth_per_s(series: Series | None, now_s: float) -> float:
    """Robust growth rate of a backlog (requests/s) over the last ARRIVAL_WINDOW_S; 0 when not growing.

    While nothing serves (at zero, or before warming replicas are Ready) the backlog grows at the arrival
    rate: a gateway queue going 0, 10, 20, 30 at 5 s steps is 2 requests/s. Only from the first non-zero
    point: the jump from nothing to a burst is backlog arriving at once, not a rate (0, 0, 0, 20, 20, 20 is
    a burst of 20 and no arrivals since; over the whole window Theil-Sen would read the step as a slope).
    """
    t, v = _window(series, now_s - ARRIVAL_WINDOW_S, now_s)
    start = int(np.argmax(v > 0)) if (v > 0).any() else len(v)
    t, v = t[start:], v[start:]
    if len(t) < ARRIVAL_MIN_POINTS or t[-1] - t[0] < ARRIVAL_MIN_SPAN_S:
        return 0.0
    return max(0.0, theil_sen_slope(t, v))


def _served_history(state: State) -> Series | None:
    return state.history.get(Measure.REQUESTS)


def project(
    signals: Signals,
    state: State,
    capacity: Capacity,
    horizon_s: float,
    now_s: float,
    *,
    at_zero_demand: tuple[float | None, Series | None, str] | None = None,
    predictive: bool = True,
) -> Projection | None:
    """The replicas needed at the end of ``horizon_s``; None when the demand cannot be read.

    Serving (some replica Ready): arrivals = requests finished per second + the growth of the requests in
    flight; backlog = the engine's waiting requests. At zero or while the first step loads
    (``at_zero_demand`` = (value, recent history, source)): arrivals = the growth of the demand waiting in
    front of the Deployment, backlog = that demand.
    """
    if at_zero_demand is not None:
        backlog, recent, source = at_zero_demand
        if backlog is None:
            return None
        arrivals = growth_per_s(recent, now_s)
        forecast, bounded = arrivals, False
    else:
        served = signals.requests_per_s
        if served is None:
            return None
        in_flight = state.history.get(Measure.QUEUE)
        arrivals = served + growth_per_s(in_flight, now_s)
        backlog = signals.waiting_requests or 0.0
        source = "engine"
        forecast, bounded = arrivals, False
        history = _served_history(state)
        if predictive and history is not None:
            fc = forecast_demand(history, served, now_s, horizon_s)
            if fc is not None and fc.value > served:
                forecast, bounded = arrivals + (fc.value - served), fc.bounded
    replicas = capacity.replicas_for(forecast + backlog / max(horizon_s, 1.0))
    return Projection(horizon_s, arrivals, forecast, backlog, source, replicas, bounded)


def reactive_needs(state: State, capacity: Capacity) -> Series:
    """The replicas the projection asked for at each step of the history (served requests at the current
    capacity; no forecast, no backlog): what the reactive path would have had Ready a horizon later."""
    served = state.history.get(Measure.REQUESTS)
    if served is None or not len(served):
        return Series()
    values: Sequence[float] = [capacity.replicas_for(max(0.0, v)) for v in served.values]
    return Series(served.times_s, values)
