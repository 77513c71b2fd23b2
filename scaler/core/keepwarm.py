"""Keep-warm economics: when an idle Deployment should give its last replica back.

Keeping one replica warm for another t seconds costs t GPU-seconds. Releasing it costs, when the next
request comes, a cold start: ``cold_start_s`` of GPU time spent loading plus the requests that wait for
it and miss their SLO, which we price at another ``cold_start_s`` of GPU time. So the penalty of a
release is ``PENALTY_COLD_STARTS x cold_start_s`` GPU-seconds (2 x 60 s = 120 s by default).

The rule (ski rental, refined by the gaps seen between bursts): release once the expected remaining idle
time, given that the Deployment has already been idle for ``idle_s``, exceeds the penalty. With the gaps
observed in the demand history that is the mean residual of the gaps longer than ``idle_s``; with no such
gap to learn from it is ``idle_s >= penalty`` (the break-even rule, never worse than twice the optimum).
Worked example, penalty 120 s: gaps of 10 min seen, idle for 30 s -> expected 570 s more > 120 s, release
now; gaps of 20-40 s seen, idle for 45 s -> no longer gap seen, wait until 120 s of idling.
All inputs come from Prometheus history, so every scaler replica reaches the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scaler.core.state import Series

PENALTY_COLD_STARTS = 2.0
# Fewer gaps than this longer than idle_s and the residual is anecdote: fall back to break-even.
MIN_GAPS = 3


@dataclass(frozen=True)
class Idleness:
    """``idle_s``: time since demand was last non-zero (None: no history to tell). ``gaps_s``: the idle
    gaps between bursts seen in the history (complete ones, bounded by demand on both sides)."""

    idle_s: float | None
    gaps_s: tuple[float, ...]
    history_s: float


def measure_idleness(histories: Sequence[Series], now_s: float, busy_now: bool) -> Idleness:
    """Idle time and the gaps between bursts, from the demand signals' histories (any demand counts)."""
    if busy_now:
        return Idleness(0.0, _gaps(histories), _span(histories, now_s))
    busy_times = _busy_times(histories)
    span_s = _span(histories, now_s)
    if span_s <= 0:
        return Idleness(None, (), 0.0)
    if busy_times.size == 0:
        # Idle for at least as long as we can see.
        return Idleness(span_s, (), span_s)
    return Idleness(max(0.0, now_s - float(busy_times.max())), _gaps(histories), span_s)


@dataclass(frozen=True)
class Release:
    release: bool
    expected_idle_s: float | None  # expected remaining idle time, when gaps tell it
    penalty_s: float
    why: str


def decide_release(idleness: Idleness, cold_start_s: float, min_idle_s: float) -> Release:
    """Whether to let the last replica go now."""
    penalty_s = PENALTY_COLD_STARTS * cold_start_s
    idle_s = idleness.idle_s
    if idle_s is None:
        return Release(False, None, penalty_s, "no demand history: keep one replica warm")
    if idle_s < min_idle_s:
        return Release(False, None, penalty_s, f"idle {idle_s:.0f} s < minIdleSeconds {min_idle_s:g} s")
    longer = np.asarray([g for g in idleness.gaps_s if g > idle_s])
    if len(longer) >= MIN_GAPS:
        expected = float((longer - idle_s).mean())
        if expected > penalty_s:
            return Release(
                True, expected, penalty_s, f"expected {expected:.0f} s more idle > penalty {penalty_s:.0f} s"
            )
        return Release(
            False,
            expected,
            penalty_s,
            f"expected {expected:.0f} s more idle <= penalty {penalty_s:.0f} s: cheaper to stay warm",
        )
    if idle_s >= penalty_s:
        return Release(True, None, penalty_s, f"idle {idle_s:.0f} s >= penalty {penalty_s:.0f} s")
    return Release(False, None, penalty_s, f"idle {idle_s:.0f} s < penalty {penalty_s:.0f} s")


def _busy_times(histories: Sequence[Series]) -> np.ndarray:
    times = [np.asarray(h.times_s)[np.asarray(h.values) > 0] for h in histories if len(h)]
    return np.concatenate(times) if times else np.empty(0)


def _span(histories: Sequence[Series], now_s: float) -> float:
    starts = [h.times_s[0] for h in histories if len(h)]
    return max(0.0, now_s - min(starts)) if starts else 0.0


def _gaps(histories: Sequence[Series]) -> tuple[float, ...]:
    """Lengths of the runs of zero demand between two busy samples (on the union of the histories)."""
    spacings = [np.diff(np.asarray(h.times_s)) for h in histories if len(h) >= 2]
    if not spacings:
        return ()
    return gaps_between(_busy_times(histories), float(np.concatenate(spacings).min()))


def gaps_between(busy_times_s: np.ndarray, step_s: float) -> tuple[float, ...]:
    """Idle gaps between busy samples taken every ``step_s``.

    Consecutive busy samples are one step apart; anything longer holds a gap. Busy at 0 s and 60 s on a
    15 s step: three silent samples, a gap of 60 - 15 = 45 s.
    """
    busy = np.unique(busy_times_s)
    if busy.size < 2:
        return ()
    steps = np.diff(busy)
    return tuple(float(g) for g in steps[steps > 1.5 * step_s] - step_s)
