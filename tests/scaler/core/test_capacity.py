"""The capacity model: learned iteration costs, the request mix, and the utilisation the SLO allows."""

from __future__ import annotations

import numpy as np
import pytest

from scaler.core.capacity import (
    BATCH_SHARE,
    DEFAULT_BATCH_LIMIT,
    PRIOR,
    RHO_LEARNED_MAX,
    RHO_MAX,
    RHO_MIN,
    Capacity,
    CapacitySource,
    CostModel,
    _mix_between,
    batch_limit,
    batch_rate,
    demonstrated_per_s,
    estimate_capacity,
    learn_costs,
    request_mix,
    utilisation_target,
)
from scaler.core.config import LatencyMetric
from scaler.core.signals import Measure, Signals
from scaler.core.state import LatencyWindow, Series
from tests.scaler.core.engines import engine_series

NOW_S = 1_700_000_000.0
STEP_S = 15.0
# The 70B profile the simulator fits to published figures: a = 14 ms, b = 0.28 ms, c = 70 us.
TRUE_A, TRUE_B, TRUE_C = 0.014, 0.00028, 70e-6


def engine_history(
    n_steps: int, seed: int = 0, ready: float = 2.0, rho_range: tuple[float, float] = (0.02, 0.8)
) -> dict[Measure, Series]:
    """A busy Deployment whose iterations follow T = a / (1 - rho) exactly, at varying load and mix (by
    default from light load, where T is near a, to rho 0.8)."""
    rng = np.random.default_rng(seed)
    times = tuple(NOW_S - (n_steps - 1 - i) * STEP_S for i in range(n_steps))
    prompt = rng.uniform(300, 3000, n_steps)  # tokens per request
    output = rng.uniform(50, 500, n_steps)
    rho = rng.uniform(*rho_range, n_steps)
    return engine_series(
        times, rho, prompt, output, ready, (TRUE_A, TRUE_B, TRUE_C), min_running_per_replica=1.0
    )


def test_no_history_is_the_prior() -> None:
    assert learn_costs({}) == PRIOR
    assert PRIOR.source == CapacitySource.PRIOR


def test_an_hour_of_busy_history_recovers_the_engine_costs() -> None:
    cost = learn_costs(engine_history(240))
    # two steps at the lightest load run under one sequence per replica (not busy), and the first four have
    # no minute of history before them to show the Ready replicas settled: not samples
    assert cost.source == CapacitySource.LEARNED and cost.samples == 234
    assert cost.step_base_s == pytest.approx(TRUE_A, rel=0.05)
    assert cost.decode_s_per_token == pytest.approx(TRUE_B, rel=0.12)  # the prior's pull, conservative
    assert cost.prefill_s_per_token == pytest.approx(TRUE_C, rel=0.05)
    assert cost.busy_s == pytest.approx(234 * STEP_S)


def test_fewer_busy_samples_than_the_priors_weight_are_the_prior() -> None:
    assert learn_costs(engine_history(11)) == PRIOR  # 11 steps, the first 4 unsettled: 7 samples
    assert learn_costs(engine_history(12)).source == CapacitySource.LEARNED  # 8


def test_one_load_level_places_the_base_and_keeps_the_per_token_costs_at_the_prior() -> None:
    """The docstring's worked example: a Deployment only ever seen lightly loaded (flash crowds' quiet
    start on the FP8 profile, a = 20 ms) pins T, not its split; the weak rows put the difference on the
    base, so the work per request (the capacity) stays the conservative prior's."""
    n = 52
    times = tuple(NOW_S - (n - 1 - i) * STEP_S for i in range(n))
    step, chunk, seqs = 0.0216, 21.0, 4.0  # T, prompt tokens and sequences per iteration, per replica
    history = {
        Measure.READY: Series(times, (1.0,) * n),
        Measure.RUNNING: Series(times, (seqs,) * n),
        Measure.PROMPT_TOKENS: Series(times, (chunk / step,) * n),
        Measure.GENERATION_TOKENS: Series(times, (seqs / step,) * n),
        Measure.STEP_S: Series(times, (step,) * n),
    }
    cost = learn_costs(history)
    assert cost.source == CapacitySource.LEARNED
    # 21.6 ms - 21 x 0.1 ms - 4 x 0.4 ms = 17.9 ms
    assert cost.step_base_s == pytest.approx(0.0179, rel=0.02)
    assert cost.prefill_s_per_token == pytest.approx(PRIOR.prefill_s_per_token, rel=0.02)
    assert cost.decode_s_per_token == pytest.approx(PRIOR.decode_s_per_token, rel=0.02)


def test_bursty_steps_are_not_samples() -> None:
    """A replica that idled between bursts: its sequences at the scrape are far from what Little's law
    gives for its output rate and step time, so its step time is not a measure of its load."""
    history = engine_history(40)
    bursty = dict(history)
    bursty[Measure.RUNNING] = Series(
        history[Measure.RUNNING].times_s, tuple(5 * v for v in history[Measure.RUNNING].values)
    )
    assert learn_costs(bursty) == PRIOR


def with_backlog(
    history: dict[Measure, Series], at: list[int], waiting_share: float
) -> dict[Measure, Series]:
    """``history`` with requests waiting (``waiting_share`` of the running sequences) at the steps ``at``,
    whose step times read 1.8x what their load implies (a backlog's full batches)."""
    times = history[Measure.RUNNING].times_s
    running = np.asarray(history[Measure.RUNNING].values)
    step = np.asarray(history[Measure.STEP_S].values, dtype=float).copy()
    waiting = np.zeros(len(times))
    waiting[at] = waiting_share * running[at]
    step[at] *= 1.8
    return {
        **history,
        Measure.WAITING: Series(times, tuple(waiting)),
        Measure.STEP_S: Series(times, tuple(step)),
    }


def test_steps_that_drained_a_backlog_are_not_samples() -> None:
    """A fleet sized for its load (utilisation 0.2-0.3: one load level, which pins T but barely its split)
    where one step in ten read 1.8x its load's step time while requests waited (the conversation trace at
    5x: 44.8 ms where the load implies 24.1). Counted, they pull the base down and the per-token costs up;
    with the waiting gauge they and the rate window after them are left out, and the costs are the
    engine's."""
    history = engine_history(240, rho_range=(0.2, 0.3))
    at = list(range(8, 240, 10))
    no_gauge = with_backlog(history, at, 0.5) | {Measure.WAITING: Series((), ())}
    skewed = learn_costs(no_gauge)
    # work per request at a 1,000 / 200 token mix: 0.126 s; the skewed fit reads 0.304 (2.4x: capacity 0.41x)
    work = 1000 * TRUE_C + 200 * TRUE_B
    assert 1000 * skewed.prefill_s_per_token + 200 * skewed.decode_s_per_token > 2 * work
    cost = learn_costs(with_backlog(history, at, 0.5))
    # of 240 steps, the first 4 unsettled; each of the 24 backlog steps (8, 18, ... 238) is left out with
    # the 4 steps of its rate window after it (the last with the 1 left): 236 - (23 x 5 + 2) = 119
    assert cost.samples == 119
    assert cost.step_base_s == pytest.approx(TRUE_A, rel=0.02)
    assert 1000 * cost.prefill_s_per_token + 200 * cost.decode_s_per_token == pytest.approx(work, rel=0.02)


@pytest.mark.parametrize(
    ("share", "samples"),
    [
        (0.1, 234),  # a tenth of the running sequences waiting: a busy engine, still a sample
        (0.11, 229),  # more: the step and the 4 after it (its rate window) are not samples
    ],
)
def test_the_waiting_share_a_sample_tolerates(share: float, samples: int) -> None:
    history = engine_history(240)
    times = history[Measure.RUNNING].times_s
    waiting = np.zeros(len(times))
    waiting[100] = share * history[Measure.RUNNING].values[100]
    cost = learn_costs({**history, Measure.WAITING: Series(times, tuple(waiting))})
    assert cost.samples == samples


def test_idle_steps_are_not_samples() -> None:
    history = engine_history(40)
    idle = dict(history)
    idle[Measure.RUNNING] = Series(history[Measure.RUNNING].times_s, (1.5,) * 40)  # under 1 per replica
    assert learn_costs(idle) == PRIOR


@pytest.mark.parametrize(
    ("prompt", "generation", "requests", "want"),
    [
        (1155.0 * 5, 211.0 * 5, 5.0, (1155.0, 211.0, True)),
        (0.0, 0.0, 0.0, (1000.0, 200.0, False)),  # nothing served: the prior mix
    ],
)
def test_request_mix(
    prompt: float, generation: float, requests: float, want: tuple[float, float, bool]
) -> None:
    signals = Signals(
        1, 1, prompt_tokens_per_s=prompt, generation_tokens_per_s=generation, requests_per_s=requests
    )
    assert request_mix(signals, {}, NOW_S) == pytest.approx(want)


def test_the_mix_is_averaged_over_recent_history() -> None:
    times = (NOW_S - 30, NOW_S - 15, NOW_S)
    history = {
        Measure.PROMPT_TOKENS: Series(times, (1000.0, 3000.0, 2000.0)),
        Measure.GENERATION_TOKENS: Series(times, (100.0, 300.0, 200.0)),
        Measure.REQUESTS: Series(times, (1.0, 1.0, 1.0)),
    }
    prompt, output, measured = request_mix(Signals(1, 1), history, NOW_S)
    assert (prompt, output, measured) == (2000.0, 200.0, True)


COST = CostModel(TRUE_A, TRUE_B, TRUE_C, CapacitySource.LEARNED, 100, 1500.0)


@pytest.mark.parametrize(
    ("slo_s", "metric", "output", "rho"),
    [
        (1.0, LatencyMetric.TTFT, 211.0, RHO_MAX),  # 1 - 2 x 0.014 / (0.5 - 0.081) = 0.93: capped at 0.8
        # 1 - 2 x 0.014 / (0.15 - 0.081) = 0.59
        (0.3, LatencyMetric.TTFT, 211.0, 1 - 2 * 0.014 / (0.15 - 70e-6 * 1155)),
        # e2e 10 s with 211 output tokens: 1 - 213 x 0.014 / (5 - 0.081) = 0.39
        (10.0, LatencyMetric.E2E, 211.0, 1 - 213 * 0.014 / (5 - 70e-6 * 1155)),
        (0.1, LatencyMetric.TTFT, 211.0, RHO_MIN),  # the SLO is below the prompt's own prefill
        (None, LatencyMetric.TTFT, 211.0, RHO_MAX),
    ],
)
def test_utilisation_target(slo_s: float | None, metric: LatencyMetric, output: float, rho: float) -> None:
    got, note = utilisation_target(COST, 1155.0, output, slo_s, metric)
    assert got == pytest.approx(rho)
    assert (note != "") == (rho == RHO_MIN)


def test_capacity_follows_the_mix() -> None:
    """Longer prompts mean fewer requests per replica: the worked example of the module docstring. (The
    learned costs come from the history; the mix from the signals, the history having no request counts.)"""
    history = {m: s for m, s in engine_history(240).items() if m != Measure.REQUESTS}
    conv = Signals(1, 1, prompt_tokens_per_s=1155.0, generation_tokens_per_s=211.0, requests_per_s=1.0)
    cap = estimate_capacity(conv, history, 1.0, LatencyMetric.TTFT, NOW_S)
    assert cap.work_s_per_request == pytest.approx(TRUE_C * 1155 + TRUE_B * 211, rel=0.05)  # 0.14 s
    # learned costs: at most RHO_LEARNED_MAX (the SLO would allow 0.8), 0.65 / 0.14 = 4.6/s
    assert cap.utilisation_target == RHO_LEARNED_MAX
    assert cap.requests_per_s_per_replica == pytest.approx(RHO_LEARNED_MAX / 0.140, rel=0.05)
    code = Signals(1, 1, prompt_tokens_per_s=4 * 2048.0, generation_tokens_per_s=4 * 28.0, requests_per_s=4.0)
    longer = estimate_capacity(code, history, 1.0, LatencyMetric.TTFT, NOW_S)
    assert longer.requests_per_s_per_replica < cap.requests_per_s_per_replica
    assert cap.replicas_for(9.3) == pytest.approx(2.0, rel=0.05)


def test_the_prior_is_sized_at_the_slos_utilisation() -> None:
    """The prior's costs are slow on purpose: they are sized at the SLO's utilisation (RHO_MAX binds for a 1 s
    TTFT), not at the learned cap. 1,000 + 200 tokens: w = 0.1 + 0.08 = 0.18 s, 0.8 / 0.18 = 4.4/s."""
    cap = estimate_capacity(Signals(1, 1), {}, 1.0, LatencyMetric.TTFT, NOW_S)
    assert cap.cost == PRIOR and cap.utilisation_target == RHO_MAX
    assert cap.requests_per_s_per_replica == pytest.approx(0.8 / 0.18)


@pytest.mark.parametrize("seed", range(4))
def test_the_mix_of_a_window_equals_a_scan_of_the_whole_series(seed: int) -> None:
    """_mix_between bisects the sorted times; the sums must be a scan's, float for float."""
    rng = np.random.default_rng(seed)
    times = 1_000_000.0 + 15.0 * np.arange(240)
    history = {
        Measure.PROMPT_TOKENS: Series(times, rng.gamma(1.0, 4000.0, 240)),
        Measure.GENERATION_TOKENS: Series(times[40:], rng.gamma(1.0, 300.0, 200)),
        Measure.REQUESTS: Series(times, rng.gamma(0.5, 3.0, 240) * (rng.random(240) > 0.3)),
    }

    def scan(start_s: float, end_s: float) -> tuple[float | None, float | None]:
        prompt, output, requests = (
            sum(v for t, v in zip(history[m].times_s, history[m].values, strict=True) if start_s < t <= end_s)
            for m in (Measure.PROMPT_TOKENS, Measure.GENERATION_TOKENS, Measure.REQUESTS)
        )
        return (None, None) if requests <= 0 else (prompt / requests, max(1.0, output / requests))

    for end_s in (times[0] - 15, times[0], times[10] + 7.5, times[45], times[120], times[-1], times[-1] + 60):
        assert _mix_between(history, end_s - 60.0, end_s) == scan(end_s - 60.0, end_s), end_s


BOUNDS = (0.25, 0.5, 1.0, 2.0, float("inf"))


def _minute(end_s: float, ready: float, requests: float, in_time: float) -> LatencyWindow:
    """A minute of ``requests`` on ``ready`` replicas, the fraction ``in_time`` under 0.25 s, the rest at
    1-2 s (late against a 1 s SLO at any fleet up to twice this one)."""
    fast = requests * in_time
    return LatencyWindow(end_s, ready, requests, BOUNDS, (fast, fast, fast, requests, requests))


@pytest.mark.parametrize(
    ("after", "want_per_s"),
    [
        # The latest minute: nothing after it yet, so it counts (600 requests on one replica: 10/s).
        (None, 10.0),
        # The next minute met the target on the same replica: sustained.
        ((1.0, 600.0, 1.0), 10.0),
        # The next minute missed on the same replica (49 % in time): the 600 were served while the backlog
        # built, not capacity within the SLO. The 120-request minute before it demonstrates 2/s.
        ((1.0, 600.0, 0.49), 2.0),
        # The next minute met the target only because a second replica had joined: not evidence for one
        # replica at 10/s; that minute itself shows 600 / 60 / 2 = 5/s each.
        ((2.0, 600.0, 1.0), 5.0),
        # A quiet next minute (under DEMONSTRATION_MIN_REQUESTS) neither confirms nor contradicts.
        ((1.0, 30.0, 0.0), 10.0),
    ],
)
def test_a_demonstration_the_next_minute_contradicts_does_not_count(
    after: tuple[float, float, float] | None, want_per_s: float
) -> None:
    times = tuple(NOW_S - 240 + 15.0 * i for i in range(17))
    # The same mix throughout (1,000 prompt and 200 output tokens per request), so the conversion between
    # mixes is 1 and the demonstrated rate is requests / 60 / ready.
    history = {
        Measure.PROMPT_TOKENS: Series(times, (1000.0,) * 17),
        Measure.GENERATION_TOKENS: Series(times, (200.0,) * 17),
        Measure.REQUESTS: Series(times, (1.0,) * 17),
    }
    end = NOW_S - 60.0
    windows = [_minute(end - 60.0, 1.0, 120.0, 1.0), _minute(end, 1.0, 600.0, 1.0)]
    if after is not None:
        windows.append(_minute(end + 60.0, *after))
    work_s = COST.prefill_s_per_token * 1000 + COST.decode_s_per_token * 200
    got = demonstrated_per_s(windows, history, COST, work_s, 1.0, 0.99)
    assert got is not None
    assert got[0] == pytest.approx(want_per_s)
    assert got[1] == (2 if want_per_s == 5.0 else 1)  # the Ready replicas of the minute that showed it


def _engine(times: tuple[float, ...], ready: float, running: float, queue: float) -> dict[Measure, Series]:
    n = len(times)
    return {
        Measure.READY: Series(times, (ready,) * n),
        Measure.RUNNING: Series(times, (running,) * n),
        Measure.QUEUE: Series(times, (queue,) * n),
    }


@pytest.mark.parametrize(
    ("ready", "running", "queue", "want"),
    [
        (2.0, 512.0, 700.0, 256.0),  # the docstring's example: 188 waiting behind 256 per replica
        (2.0, 300.0, 301.0, DEFAULT_BATCH_LIMIT),  # one waiting across two replicas: not a full batch
        (2.0, 300.0, 300.0, DEFAULT_BATCH_LIMIT),  # nothing waiting: the batch was never full
        (4.0, 4096.0, 5000.0, 1024.0),  # vLLM V1's H100 default, seen
        (0.0, 0.0, 50.0, DEFAULT_BATCH_LIMIT),  # nothing Ready: nothing to read
    ],
)
def test_the_batch_limit_is_what_a_replica_ran_while_requests_waited(
    ready: float, running: float, queue: float, want: float
) -> None:
    assert batch_limit(_engine((NOW_S - 15.0, NOW_S), ready, running, queue)) == want


def test_no_queue_history_is_the_default_batch_limit() -> None:
    history = _engine((NOW_S,), 2.0, 512.0, 700.0)
    del history[Measure.QUEUE]
    assert batch_limit(history) == DEFAULT_BATCH_LIMIT


def test_the_batch_rate_is_littles_law_at_the_limit() -> None:
    """The docstring's worked example: a = 20 ms, w = 0.08 s, 211 output tokens, a mean batch of 128:
    128 / (211 x 0.02 + 128 x 0.08) = 8.9 requests/s; there the mean batch is lam O a / (1 - lam w)."""
    cost = CostModel(0.020, 0.00014, 44e-6, CapacitySource.LEARNED, 100, 1500.0)
    lam = batch_rate(cost, 211.0, 0.08, 128.0)
    assert lam == pytest.approx(128 / (4.22 + 10.24))  # 8.85
    assert lam * 211.0 * cost.step_s(lam * 0.08) == pytest.approx(128.0)


def test_a_demonstration_counts_only_up_to_the_batch_rate() -> None:
    """A minute on one replica served 30 requests/s, all in time (a batch filling up serves its first
    requests in time); at the learned costs the mean batch at that rate is far over half the limit, so the
    capacity is the batch rate, not the minute's."""
    history = engine_history(240)
    mix = Signals(1, 1)
    end = NOW_S - 60.0
    windows = [_minute(end, 1.0, 1800.0, 1.0)]
    cap = estimate_capacity(mix, history, 1.0, LatencyMetric.TTFT, NOW_S, windows)
    assert cap.demonstrated_per_s is not None and cap.demonstrated_per_s > 20.0
    assert cap.batch_limit == DEFAULT_BATCH_LIMIT  # the history has no queue
    assert cap.requests_per_s_per_replica == pytest.approx(cap.batch_requests_per_s)
    assert cap.requests_per_s_per_replica < cap.demonstrated_per_s
    want = batch_rate(cap.cost, cap.output_tokens_per_request, cap.work_s_per_request, BATCH_SHARE * 256)
    assert cap.batch_requests_per_s == pytest.approx(want)


def _capacity(per_s: float, shown: float | None, on: int) -> Capacity:
    return Capacity(PRIOR, 1000.0, 200.0, True, 0.1, 0.65, per_s, "", shown, on)


@pytest.mark.parametrize(
    ("requests_per_s", "want"),
    [
        # The docstring's example: 10/s shown on 4 replicas, the model's 6.5/s: 20/s is 2 replicas by the
        # demonstration and 3.08 by the model; a fleet below 4 is sized by the model.
        (20.0, 20 * 0.1 / 0.65),
        # 30/s is 3 by the demonstration, a fleet below 4, and 4.6 by the model: never above the 4 that
        # showed it.
        (30.0, 4.0),
        # 35/s is 3.5 by the demonstration, which rounds up to the 4 that showed it: it stands.
        (35.0, 3.5),
        # At 4 replicas or more the demonstration stands: 50/s on 5.
        (50.0, 5.0),
    ],
)
def test_a_demonstration_on_k_replicas_does_not_size_a_fleet_below_k(
    requests_per_s: float, want: float
) -> None:
    assert _capacity(10.0, 10.0, 4).replicas_for(requests_per_s) == pytest.approx(want)


def test_without_a_demonstration_replicas_are_the_rate_over_the_capacity() -> None:
    assert _capacity(6.5, None, 0).replicas_for(20.0) == pytest.approx(20.0 / 6.5)
