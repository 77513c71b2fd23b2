"""Short bursts: an ask above the Ready fleet is held back while every past episode above that level was
over before a replica asked at its start could be Ready. Needs in replicas, one step every 15 s, a 75 s
horizon (a 60 s cold start and the 15 s control delay)."""

from __future__ import annotations

import pytest

from scaler.core.bursts import MIN_EPISODES, short_burst_cap
from scaler.core.state import Series

STEP_S = 15.0
HORIZON_S = 75.0
CALM = [0.5] * 8


def needs(*parts: list[float]) -> Series:
    values = [v for part in parts for v in part]
    return Series(tuple(STEP_S * i for i in range(len(values))), tuple(values))


def burst(level: float, steps: int) -> list[float]:
    return [level] * steps + CALM


@pytest.mark.parametrize(
    ("history", "ask", "ready", "held", "longest_s", "current_s"),
    [
        # two past bursts above 1 replica (1.4: the projection rounds up to 2), 30 s each: no second replica
        (needs(CALM, burst(1.4, 2), burst(1.4, 2)), 2, 1, 1, 30.0, 0.0),
        # the current one has lasted 30 s, no longer than the longest past one: still held
        (needs(CALM, burst(1.4, 2), burst(1.4, 2), [1.4, 1.4]), 2, 1, 1, 30.0, 30.0),
        # 45 s: it has outlasted them (a surge, not a burst), so the whole ask goes
        (needs(CALM, burst(1.4, 2), burst(1.4, 2), [1.4] * 3), 2, 1, None, None, None),
        # one past burst is an anecdote
        (needs(CALM, burst(1.4, 2)), 2, 1, None, None, None),
        # a past episode of 75 s lasted until a replica asked at its start was Ready: worth asking
        (needs(CALM, burst(1.4, 2), burst(1.4, 5)), 2, 1, None, None, None),
        # 60 s is still short
        (needs(CALM, burst(1.4, 2), burst(1.4, 4)), 2, 1, 1, 60.0, 0.0),
        # asked 3: the need never went above 2, so level 3 has no short bursts behind it: the whole ask
        (needs(CALM, burst(1.4, 2), burst(1.4, 2)), 3, 1, None, None, None),
        # above 2 only in short bursts, above 1 for a long stretch (90 s): held at 2
        (needs(CALM, [1.4] * 6, burst(2.5, 2), [1.4] * 6, burst(2.5, 2)), 3, 1, 2, 30.0, 0.0),
        # both levels short: held at the Ready fleet
        (needs(CALM, burst(2.5, 2), burst(2.5, 3)), 3, 1, 1, 45.0, 0.0),
        # an episode that began with the history has no known length: only one counts
        (needs(burst(1.4, 2), burst(1.4, 2)), 2, 1, None, None, None),
        # nothing above the Ready fleet asked, or nothing Ready (from zero always wakes)
        (needs(CALM, burst(1.4, 2), burst(1.4, 2)), 1, 1, None, None, None),
        (needs(CALM, burst(1.4, 2), burst(1.4, 2)), 2, 0, None, None, None),
    ],
)
def test_an_ask_is_held_back_only_for_levels_reached_in_short_bursts_alone(
    history: Series,
    ask: int,
    ready: int,
    held: int | None,
    longest_s: float | None,
    current_s: float | None,
) -> None:
    cap = short_burst_cap(ask, ready, history, HORIZON_S)
    if held is None:
        assert cap is None
        return
    assert cap is not None
    assert (cap.asked, cap.replicas, cap.longest_s, cap.current_s) == (ask, held, longest_s, current_s)
    assert cap.episodes >= MIN_EPISODES
    assert f"held at {held}" in cap.why and f"the longest {longest_s:.0f} s" in cap.why


def test_too_short_a_history_holds_nothing_back() -> None:
    assert short_burst_cap(2, 1, needs([1.4, 1.4]), HORIZON_S) is None
