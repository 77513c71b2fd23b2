"""Forecast: where a demand signal will be one cold start from now, from its recent history.

A robust trend (Theil-Sen: the median of all pairwise slopes), damped over the horizon, and bounded so one
spike cannot double the fleet. Pure: a ``Series`` in, a number out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaler.core.state import Series

# The trend is fitted on the last LOOKBACK_S of history: long enough to see a ramp through scrape noise,
# short enough to follow it when it turns.
LOOKBACK_S = 300.0
MIN_POINTS = 4
# A damped trend: the slope's effect decays with time constant DAMPING_S, so a ramp fitted over 5 min is
# not extrapolated linearly over a 6 min cold start. Extrapolation length = tau x (1 - exp(-h / tau)):
# h = 60 s gives 50 s, h = 300 s gives 190 s, never more than tau = 300 s.
DAMPING_S = 300.0
# Bound: the forecast may add at most half of the current level -- a spike cannot double the fleet.
MAX_GROWTH_FRACTION = 0.5


@dataclass(frozen=True)
class Forecast:
    value: float
    slope_per_s: float
    horizon_s: float
    bounded: bool


def theil_sen_slope(times_s: np.ndarray, values: np.ndarray) -> float:
    """Median of pairwise slopes: a single outlier among n points moves it by at most one rank."""
    i, j = np.triu_indices(len(times_s), k=1)
    dt = times_s[j] - times_s[i]
    ok = dt > 0
    if not ok.any():
        return 0.0
    return float(np.median((values[j] - values[i])[ok] / dt[ok]))


def forecast_demand(history: Series, now_value: float, now_s: float, horizon_s: float) -> Forecast | None:
    """Demand expected ``horizon_s`` after ``now_s``; None without enough recent history.

    Only growth is forecast: a falling trend never lowers the ask below what is measured now (scale-down
    waits for the measurement, it is not predicted).
    """
    t = np.asarray(history.times_s, dtype=float)
    v = np.asarray(history.values, dtype=float)
    recent = (t > now_s - LOOKBACK_S) & (t <= now_s) & np.isfinite(v)
    t, v = t[recent], v[recent]
    if len(t) < MIN_POINTS:
        return None
    slope = theil_sen_slope(t, v)
    if slope <= 0:
        return Forecast(now_value, slope, horizon_s, bounded=False)
    reach_s = DAMPING_S * (1.0 - np.exp(-horizon_s / DAMPING_S))
    # Anchor at the robust level now: the median of the last few points, raised to the current reading.
    level = max(now_value, float(np.median(v[-MIN_POINTS:])))
    raw = level + slope * reach_s
    cap = level * (1.0 + MAX_GROWTH_FRACTION)
    return Forecast(min(raw, cap), slope, horizon_s, bounded=raw > cap)
