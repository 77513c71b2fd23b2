"""Keep-warm economics on fractional asks: the projection asks fractions of a replica."""

from __future__ import annotations

import pytest

from scaler.core.keepwarm import decide_release, keep_warm_floor
from scaler.core.state import Series

STEP_S = 15.0
NOW_S = 10_000.0


def asks(values: list[float]) -> Series:
    n = len(values)
    return Series(tuple(NOW_S - (n - 1 - i) * STEP_S for i in range(n)), tuple(values))


@pytest.mark.parametrize(
    ("history", "held", "idle_s"),
    [
        # An hour of light traffic (0.3 of a replica) that stopped 30 s ago: the first replica was needed
        # 30 s ago, less than the 60 s cold start, so it stays. Read as "never reached 1" it was idle for
        # the whole hour and went at once.
        ([0.3] * 240 + [0.0, 0.0], True, 30.0),
        # ...and 90 s after the traffic stopped it goes (90 s >= 60 s).
        ([0.3] * 240 + [0.0] * 6, False, 90.0),
        # A whole replica's worth, stopped 30 s ago: the same.
        ([1.0] * 240 + [0.0, 0.0], True, 30.0),
    ],
)
def test_any_demand_needs_the_first_replica(history: list[float], held: bool, idle_s: float) -> None:
    kept = keep_warm_floor(asks(history), current=1, desired=0, now_s=NOW_S, cold_start_s=60.0)
    assert kept.held is held
    assert kept.verdict is not None and kept.verdict.idle_s == pytest.approx(idle_s)
    assert kept.replicas == (1 if held else 0)


@pytest.mark.parametrize(
    ("need", "marginal", "replicas", "held"),
    [
        # Needs of 1.3 for an hour on 2 replicas, dropping to 0.5: with the decision's latency-room band
        # of 0.5 replica, 1.3 is what it holds at 1 replica, so level 2 was never needed: it goes, and
        # level 1, needed now, is where the fleet stops.
        (1.3, 0.5, 1, False),
        # 1.6 is past the band: the decision asked for 2, so the second replica was needed 15 s ago
        # (idle 15 s < the 60 s cold start) and stays. Read as needed only at 2.0, it had looked idle
        # for the whole hour and went at once (the conversation trace at 2x, seed 3: 2 -> 1 replica on a
        # dip to 7.3 requests/s, and the next minute's 682 requests left 230 late).
        (1.6, 0.5, 2, True),
        # With no band, any fraction past a level needs the next one (the ceiling of the ask).
        (1.3, 0.0, 2, True),
    ],
)
def test_a_level_is_needed_where_the_ask_passed_the_band(
    need: float, marginal: float, replicas: int, held: bool
) -> None:
    kept = keep_warm_floor(
        asks([need] * 240 + [0.5]),
        current=2,
        desired=1,
        now_s=NOW_S,
        cold_start_s=60.0,
        marginal_replicas=marginal,
    )
    assert (kept.replicas, kept.held) == (replicas, held)
    if held:
        assert kept.verdict is not None and kept.verdict.idle_s == pytest.approx(STEP_S)


@pytest.mark.parametrize(
    ("idle_s", "gaps_s", "release"),
    [
        (None, (), False),  # no history: keep
        (30.0, (), False),  # break-even not reached
        (60.0, (), True),  # idle a cold start: release
        (30.0, (75.0, 75.0, 75.0), False),  # needed again in ~45 s < 60 s
        (30.0, (600.0, 600.0, 600.0), True),  # ~570 s more expected > 60 s
    ],
)
def test_release_table(idle_s: float | None, gaps_s: tuple[float, ...], release: bool) -> None:
    assert decide_release(idle_s, gaps_s, cold_start_s=60.0).release is release


@pytest.mark.parametrize(
    ("history", "rate_window_s", "held", "idle_s"),
    [
        # A 1 m rate read demand until 15 s ago; the step after read none. The last request came at least
        # 60 - 15 = 45 s before that step: idle 15 + 45 = 60 s >= the 60 s cold start, so it goes.
        ([1.0] * 240 + [0.0], 60.0, False, 60.0),
        # The same history with no window known: idle 15 s, it stays (the rate alone).
        ([1.0] * 240 + [0.0], None, True, 15.0),
        # The rate still reads demand now: the lag has not started, idle 0 s.
        ([1.0] * 240, 60.0, True, 0.0),
        # A window no longer than the step adds nothing.
        ([1.0] * 240 + [0.0], 15.0, True, 15.0),
    ],
)
def test_a_windowed_rate_reads_demand_a_window_after_it_stopped(
    history: list[float], rate_window_s: float | None, held: bool, idle_s: float
) -> None:
    kept = keep_warm_floor(
        asks(history), current=1, desired=0, now_s=NOW_S, cold_start_s=60.0, rate_window_s=rate_window_s
    )
    assert kept.held is held
    assert kept.verdict is not None and kept.verdict.idle_s == pytest.approx(idle_s)


def test_the_gaps_between_demand_are_as_much_longer() -> None:
    """Demand at every step but two silent ones (a gap of 30 s on the rate) three times, then silence
    for 15 s: with a 1 m window each gap was 30 + 45 = 75 s and the replica has been idle 60 s: 15 s more
    expected idle < the 60 s cold start, so it stays, where break-even alone would have released it."""
    burst = [1.0] * 8 + [0.0, 0.0]
    kept = keep_warm_floor(
        asks([1.0] * 200 + burst * 3 + [1.0] * 8 + [0.0]),
        current=1,
        desired=0,
        now_s=NOW_S,
        cold_start_s=60.0,
        rate_window_s=60.0,
    )
    assert kept.held
    assert kept.verdict is not None and kept.verdict.idle_s == pytest.approx(60.0)
    assert kept.verdict.expected_idle_s == pytest.approx(15.0)
