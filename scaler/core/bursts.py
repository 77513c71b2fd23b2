"""Short bursts: no ask for a level the demand has only ever reached in bursts over before a replica is Ready.

A replica asked now is Ready a reaction horizon from now (control delay + cold start: 75 s with a 60 s cold
start). If every past episode of the demand above a level ended sooner than that, a replica asked at the
start of the next one is Ready after it is over: it serves nothing, and costs its cold start and the time
it is held after. Only replicas already warm serve such bursts, and the headroom floor prices how many to
keep against the attainment target. So while the current episode has lasted no longer than the longest
past one, the ask stays at the levels below; once it outlasts them (a surge, not a burst), the full ask
goes, at most that longest episode (under a horizon) late.

Episodes are read from the reactive needs the projection would have asked at each step of the history
(served requests over per-replica capacity): a level ``L`` is busy while the need is over ``L - 1``, i.e.
while the projection rounds up to ``L`` or more. An episode that began with the history has no known
length and is not counted; it takes ``MIN_EPISODES`` finished ones to call a level's bursts short.

Worked example (bursts at 2.5 requests/s, trace seed 19: a minute of ~740 requests every 10 minutes on 1
Ready replica, which serves each with about 10 late; 2 replicas would serve them all): the 1 m rate's
demand asked for a second replica 40-60 s into each burst (658 s, 1,258 s), Ready after the burst, and
released a minute or two later. The need history shows each burst above 1 replica for at most 45 s, under
the 75 s horizon; once two have passed, no second replica starts: 2.44 -> 2.21 GPU-h at the same 0.99696
attainment (simulator seed 0; 2.40-2.44 -> 2.20-2.21 at seeds 0-3; a static fleet of 1: 2.33).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaler.core.state import Series

# Finished episodes above a level it takes to call its bursts short: one is an anecdote.
MIN_EPISODES = 2


@dataclass(frozen=True)
class BurstCap:
    """An ask held back to ``replicas`` because the levels above were only ever reached in short bursts."""

    asked: int  # the ask before the cap
    replicas: int
    episodes: int  # finished episodes above ``replicas`` in the history
    longest_s: float  # the longest of them
    current_s: float  # how long the current one has lasted (0: none yet in the history)
    horizon_s: float
    why: str


def _episodes(times_s: np.ndarray, busy: np.ndarray, step_s: float) -> tuple[list[float], float]:
    """Durations of the finished busy runs that began after the history's first step, and the length of the
    run still going at its last step (0 if none)."""
    edges = np.diff(busy.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1  # index of each run's last busy step
    done: list[float] = []
    current_s = 0.0
    for s, e in zip(starts, ends, strict=True):
        length_s = float(times_s[e] - times_s[s]) + step_s
        if e == len(busy) - 1:
            current_s = length_s
        elif s > 0:
            done.append(length_s)
    return done, current_s


def short_burst_cap(ask: int, ready: int, needs: Series, horizon_s: float) -> BurstCap | None:
    """The ask held to the highest level whose past episodes were not all short bursts, or None when the
    whole ask stands (no level above ``ready`` was only ever reached in bursts shorter than ``horizon_s``,
    or the current episode has outlasted them)."""
    if ask <= ready or ready <= 0 or len(needs) < 3:
        return None
    t = np.asarray(needs.times_s, dtype=float)
    v = np.asarray(needs.values, dtype=float)
    step_s = float(np.diff(t).min())
    _, current_s = _episodes(t, v > ready + 1e-9, step_s)
    held = ask
    longest_s, count = 0.0, 0
    for level in range(ask, ready, -1):
        done, _ = _episodes(t, v > level - 1 + 1e-9, step_s)
        if len(done) < MIN_EPISODES or max(done) >= horizon_s or current_s > max(done):
            break
        held, longest_s, count = level - 1, max(done), len(done)
    if held == ask:
        return None
    why = (
        f"asked {ask}, held at {held}: the demand went above {held} replica(s) in {count} past burst(s), "
        f"the longest {longest_s:.0f} s, each over before a replica asked at its start was Ready "
        f"({horizon_s:.0f} s); this one has lasted {current_s:.0f} s"
    )
    return BurstCap(ask, held, count, longest_s, current_s, horizon_s, why)
