"""Keep-warm economics in GPU time: when a replica above the current need is worth giving back.

Keeping a replica warm for another t seconds costs t GPU-seconds (per GPU of the replica). Giving it back
and needing it again costs a cold start: ``cold_start_s`` of GPU time spent loading. (The requests that
would miss while it loads are priced separately, by the headroom floor against the attainment target.)

The rule is ski rental, refined by the gaps seen between the times the replica was needed: release once the
expected remaining time until it is needed again, given that it has not been needed for ``idle_s``,
exceeds the cold start. With gaps observed in the history that is the mean residual of the gaps longer than
``idle_s``; with no such gap to learn from it is ``idle_s >= cold_start_s`` (break-even, never worse than
twice the optimum). Worked example, cold start 60 s: the 5th replica was needed every 90 s (gaps of 75 s),
idle for 30 s now -> 45 s more expected < 60 s: keep it; needed once 10 minutes ago -> idle 600 s >= 60 s:
release. Every replica level is judged alone, from the history of the replicas asked for, so a fleet
shrinks one level at a time as each stops paying. All inputs come from Prometheus history, so every
scaler replica reaches the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaler.core.state import Series

# Fewer gaps than this longer than idle_s and the residual is anecdote: fall back to break-even.
MIN_GAPS = 3


@dataclass(frozen=True)
class Release:
    release: bool
    idle_s: float | None  # time since the level was last needed (None: no history to tell)
    expected_idle_s: float | None  # expected remaining idle time, when gaps tell it
    penalty_s: float
    why: str


def decide_release(
    idle_s: float | None, gaps_s: tuple[float, ...], cold_start_s: float, min_idle_s: float = 0.0
) -> Release:
    """Whether to give a replica back now, given how long it has been idle and the gaps seen before."""
    penalty_s = cold_start_s
    if idle_s is None:
        return Release(False, None, None, penalty_s, "no history: keep it warm")
    if idle_s < min_idle_s:
        return Release(
            False, idle_s, None, penalty_s, f"idle {idle_s:.0f} s < minIdleSeconds {min_idle_s:g} s"
        )
    longer = np.asarray([g for g in gaps_s if g > idle_s])
    if len(longer) >= MIN_GAPS:
        expected = float((longer - idle_s).mean())
        if expected > penalty_s:
            return Release(
                True,
                idle_s,
                expected,
                penalty_s,
                f"expected {expected:.0f} s more idle > cold start {penalty_s:.0f} s",
            )
        return Release(
            False,
            idle_s,
            expected,
            penalty_s,
            f"needed again in ~{expected:.0f} s <= cold start {penalty_s:.0f} s: cheaper to keep warm",
        )
    if idle_s >= penalty_s:
        return Release(True, idle_s, None, penalty_s, f"idle {idle_s:.0f} s >= cold start {penalty_s:.0f} s")
    return Release(False, idle_s, None, penalty_s, f"idle {idle_s:.0f} s < cold start {penalty_s:.0f} s")


@dataclass(frozen=True)
class KeepWarm:
    """The lowest level the fleet may shrink to now. ``verdict`` is the release verdict of the level that
    holds it (``held``), or, when every level above ``desired`` may go, of the lowest one released."""

    replicas: int
    held: bool
    level: int
    verdict: Release | None


def keep_warm_floor(
    asks: Series,
    current: int,
    desired: int,
    now_s: float,
    cold_start_s: float,
    min_idle_s: float = 0.0,
    rate_window_s: float | None = None,
    marginal_replicas: float = 0.0,
) -> KeepWarm:
    """Walk down from ``current`` to ``desired``: the first replica level whose release does not pay holds
    the fleet there. A level is needed at the history steps where the ask passed ``level - 1 +
    marginal_replicas`` (the first, wherever there was any demand); one never needed in
    the history has been idle at least as long as the history (unknown without one: it stays).

    ``marginal_replicas``: how far past ``level - 1`` an ask must go to have needed ``level``: the part of
    a replica the decision would not have scaled up for (its latency-room band). An ask is a fraction of
    a replica, and one of 1.6 on 2 Ready replicas keeps the second; reading level 2 as needed only at 2.0
    made that replica look idle for the whole history, so it went the moment the ask dipped below 1, with
    no cold start's worth of keep-warm (see ``level_idle``).

    ``rate_window_s``: the window of the rate the asks were read from. The first replica is needed while
    any request came, and a rate over a window W still reads one W after it: if step t was the last to
    read demand and t + step read none, the last request came in (t - W, t + step - W], so the replica has
    been idle at least ``now - t + W - step``, and each gap between demand was as much longer. Worked
    example: a 1 m rate on a 15 s history, the last request at 3,600 s: the rate reads it until 3,660 s,
    and at 3,720 s the replica has been idle 105 s, not the 60 s the rate alone shows."""
    last: tuple[int, Release] | None = None
    for level in range(current, desired, -1):
        idle_s, gaps = level_idle(asks, level, now_s, rate_window_s, marginal_replicas)
        verdict = decide_release(idle_s, gaps, cold_start_s, min_idle_s if level == 1 else 0.0)
        if not verdict.release:
            return KeepWarm(level, True, level, verdict)
        last = (level, verdict)
    return KeepWarm(desired, False, last[0] if last else 0, last[1] if last else None)


def level_idle(
    asks: Series,
    level: int,
    now_s: float,
    rate_window_s: float | None = None,
    marginal_replicas: float = 0.0,
) -> tuple[float | None, tuple[float, ...]]:
    """How long replica ``level`` has not been needed (None: no history to tell), and the idle gaps
    between the times it was. See keep_warm_floor for ``rate_window_s`` and ``marginal_replicas``."""
    times = np.asarray(asks.times_s)
    values = np.asarray(asks.values)
    step_s = float(np.diff(times).min()) if len(times) >= 2 else 0.0
    # Any demand at all needs the first replica (a need of 0.3 is one replica, not none); above it a
    # level is needed where the need passed the band the decision does not scale up for (with a band of
    # 0.5, a need of 1.3 on 1 replica is what the latency-room rule holds at 1, so level 2 was not
    # needed; 1.6 was).
    above = level - 1 + marginal_replicas + 1e-9
    busy = times[values > 1e-9] if level == 1 else times[values > above]
    idle_s: float | None = (now_s - float(times[0])) if len(times) else None
    lag_s = max(0.0, rate_window_s - step_s) if level == 1 and rate_window_s and step_s > 0 else 0.0
    if busy.size:
        idle_s = max(0.0, now_s - float(busy.max()))
        if float(times[-1]) > float(busy.max()):  # a later step read nothing: the lag has started
            idle_s += lag_s
    gaps = tuple(g + lag_s for g in gaps_between(busy, step_s)) if step_s > 0 else ()
    return idle_s, gaps


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
