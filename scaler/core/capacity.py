"""Capacity: how much work one Ready replica serves while the SLO holds, learned from the engine's metrics.

The iteration model (vLLM's scheduler; llm-d's workload-variant-autoscaler fits the same shape): one engine
iteration decodes one token for each of the ``n`` running sequences and prefills a chunk of prompt tokens,
and takes ``T = a + b n + c chunk`` seconds. On a replica serving ``lam`` requests/s of ``I`` prompt and
``O`` output tokens, Little's law gives ``n = lam O T`` and ``chunk = lam I T``, so

    T = a + (b O + c I) lam T   =>   T = a / (1 - rho),   rho = lam (c I + b O).

``w = c I + b O`` is the work of one request in replica-seconds and ``rho`` the replica's utilisation:
iterations (TPOT) and with them the time to the first token stretch as ``1 / (1 - rho)``. The capacity of a
replica is the request rate at the utilisation the SLO allows, ``lam* = rho* / w``; it adapts to the mix
(longer prompts mean fewer requests per replica). Worked example (Llama-70B on 4x H100, a = 14 ms,
b = 0.28 ms, c = 70 us; conversation mix I = 1,155, O = 211): w = 0.081 + 0.059 = 0.14 s, and at
rho* = 0.8 one replica serves 5.7 requests/s.

``a``, ``b`` and ``c`` are learned online by least squares on the Deployment's history (mean inter-token
latency, running sequences and prompt tokens per Ready replica, one sample per history step in which the
replica was busy), pulled towards a conservative prior by pseudo-observations, so a Deployment never seen
under load is sized from the prior and one seen for a few minutes from its own numbers. Pure: history in,
an estimate out.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from scaler.core.config import LatencyMetric
from scaler.core.headroom import attainment_at
from scaler.core.signals import Measure, Signals
from scaler.core.state import LatencyWindow, Series

# The prior: a 70B-class model on one 4-GPU replica, on the slow side (an 8B model is about 2x faster), so
# that a Deployment nobody has measured is over- rather than under-provisioned. The step base is the low
# end (an 8B model's): it only anchors the fit where the data cannot place it (a Deployment always at one
# load), and there a low base reads the utilisation high (rho = 1 - a / T) and the capacity low.
PRIOR_STEP_BASE_S = 0.008  # a: weights read once per iteration
PRIOR_DECODE_S_PER_TOKEN = 0.0004  # b: KV reads per sequence in the batch
PRIOR_PREFILL_S_PER_TOKEN = 0.0001  # c: 10,000 prompt tokens/s
# A request mix assumed before any request has been seen (backlog at zero is counted in requests).
PRIOR_PROMPT_TOKENS = 1000.0
PRIOR_OUTPUT_TOKENS = 200.0
# Weight of the prior, in samples: 8 samples at a 15 s step are 2 minutes of load; after 10 minutes of
# load the Deployment's own numbers dominate.
PRIOR_WEIGHT_SAMPLES = 8.0
RIDGE = 0.02
# A minute with fewer requests than this demonstrates nothing about capacity.
DEMONSTRATION_MIN_REQUESTS = 50.0
# A step is steady when the running sequences are within this factor of what Little's law implies.
LITTLE_BAND = 0.5
# ...and settled when the Ready replicas were the same for this many steps before it (a 1 m rate window
# at a 15 s step).
SETTLED_STEPS = 4
# A history step counts as a sample only if the replicas were busy: at least one sequence running each.
MIN_RUNNING_PER_REPLICA = 1.0
# The mix is averaged over this much recent history (a 1 min rate window is noisy for long requests).
MIX_WINDOW_S = 300.0
# Utilisation bounds: above RHO_MAX every iteration is 5x its base and bursts have nowhere to go; below
# RHO_MIN the SLO is too tight for the engine and more replicas barely help (said in explain).
RHO_MAX = 0.8
RHO_MIN = 0.3
# Share of the SLO the typical request may use; the rest is for the tail (queueing, long prompts).
TYPICAL_SHARE_OF_SLO = 0.5
# Iterations a typical request waits for before and during its prefill (the one running when it arrives,
# and the one that holds its prompt).
ITERATIONS_TO_FIRST_TOKEN = 2.0


class CapacitySource(StrEnum):
    PRIOR = "prior"  # no busy history: the conservative prior
    LEARNED = "learned"  # the Deployment's own history outweighs the prior


@dataclass(frozen=True)
class CostModel:
    """Seconds of one replica's engine time: per iteration, per decoded token per sequence, per prompt
    token."""

    step_base_s: float
    decode_s_per_token: float
    prefill_s_per_token: float
    source: CapacitySource
    samples: int  # busy history steps used
    busy_s: float  # the load they cover

    def step_s(self, rho: float) -> float:
        """Iteration time at utilisation ``rho`` (``a / (1 - rho)``)."""
        return self.step_base_s / max(1e-6, 1.0 - rho)


PRIOR = CostModel(
    PRIOR_STEP_BASE_S, PRIOR_DECODE_S_PER_TOKEN, PRIOR_PREFILL_S_PER_TOKEN, CapacitySource.PRIOR, 0, 0.0
)


@dataclass(frozen=True)
class Capacity:
    """What one Ready replica serves within the SLO, for the current request mix."""

    cost: CostModel
    prompt_tokens_per_request: float
    output_tokens_per_request: float
    mix_measured: bool  # False: the mix is the prior (no request seen recently)
    work_s_per_request: float  # w = c I + b O
    utilisation_target: float  # rho*
    requests_per_s_per_replica: float  # max(rho* / w, demonstrated)
    note: str = ""
    # The most any Ready replica has served (per second, at this mix) in a minute that met the SLO's
    # target: evidence that one replica can; None when no such minute is in the history.
    demonstrated_per_s: float | None = None

    def replicas_for(self, requests_per_s: float) -> float:
        """Replicas (fractional) that serve ``requests_per_s`` within the SLO."""
        return requests_per_s / self.requests_per_s_per_replica


def learn_costs(history: Mapping[Measure, Series]) -> CostModel:
    """Learn ``a``, ``b`` and ``c`` from the busy steps of the history, by one linear least-squares fit.

    With ``P`` prompt and ``G`` generated tokens/s per replica, ``rho = c P + b G``, and ``T = a / (1 - rho)``
    gives ``1 / T = 1/a - (c/a) P - (b/a) G``: linear in the unknowns ``(1/a, c/a, b/a)``. The intercept is
    the iteration rate of an idle replica, the slopes what each token takes from it. Separating ``c`` from
    ``b`` needs the mix to vary (both rates grow with the load); when it does not, the fit still pins the
    work at the mix it saw, which is what the capacity needs, and the prior splits it.

    The prior enters as PRIOR_WEIGHT_SAMPLES pseudo-observations at the data's own operating points, so it
    weighs like that many real steps and fades as the history grows, plus one weak row per unknown for the
    directions the data does not span (flat load says nothing about the intercept). Residuals are relative
    (a 1/T of 50/s off by 5 matters as much as 20/s off by 2). Coefficients stay within 1/20 and 20x of the
    prior: outside is a broken metric. Worked example (the 70B profile: a = 14 ms, b = 0.28 ms, c = 70 us),
    a replica at 2,000 prompt and 400 output tokens/s: rho = 0.14 + 0.112 = 0.252, T = 14 / 0.748 = 18.7 ms.
    """
    samples = _busy_samples(history)
    if samples is None:
        return PRIOR
    t_step, prompt_per_s, output_per_s, step_s = samples
    y = 1.0 / step_s
    x = np.column_stack([np.ones_like(y), -prompt_per_s, -output_per_s])
    prior = np.array(
        [
            1.0 / PRIOR_STEP_BASE_S,
            PRIOR_PREFILL_S_PER_TOKEN / PRIOR_STEP_BASE_S,
            PRIOR_DECODE_S_PER_TOKEN / PRIOR_STEP_BASE_S,
        ]
    )
    at = np.linspace(0, len(y) - 1, int(PRIOR_WEIGHT_SAMPLES)).round().astype(int)
    x_prior = x[at]
    y_prior = x_prior @ prior
    # Relative residuals, on the data's own scale for the pseudo-observations too (where the prior would be
    # saturated its 1/T is near zero, and weighing by it would let one pseudo-observation outweigh all).
    weight = 1.0 / np.concatenate([y, y[at]])
    # The weak rows only settle what the data leaves open: a relative error of 1 on an unknown costs what a
    # relative error of RIDGE on one step's 1/T does.
    rows = np.vstack([np.vstack([x, x_prior]) * weight[:, None], RIDGE * np.diag(1.0 / prior)])
    rhs = np.concatenate([np.concatenate([y, y_prior]) * weight, RIDGE * np.ones(3)])
    fit, *_ = np.linalg.lstsq(rows, rhs, rcond=None)
    inv_a, c_over_a, b_over_a = np.clip(fit, prior / 20.0, prior * 20.0)
    a = 1.0 / inv_a
    busy_s = float(len(t_step) * (np.median(np.diff(t_step)) if len(t_step) > 1 else 0.0))
    source = CapacitySource.LEARNED if len(t_step) >= PRIOR_WEIGHT_SAMPLES else CapacitySource.PRIOR
    return CostModel(float(a), float(b_over_a * a), float(c_over_a * a), source, len(t_step), busy_s)


def _busy_samples(
    history: Mapping[Measure, Series],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(times, prompt and output tokens/s per replica, step s) on the steps where every series has a value
    and the replicas were busy; None when there is none."""
    needed = (
        Measure.READY,
        Measure.RUNNING,
        Measure.PROMPT_TOKENS,
        Measure.GENERATION_TOKENS,
        Measure.STEP_S,
    )
    series = [history.get(m) for m in needed]
    if any(s is None or not len(s) for s in series):
        return None
    by_time = [dict(zip(s.times_s, s.values, strict=True)) for s in series if s is not None]
    common = sorted(set.intersection(*(set(d) for d in by_time)))
    if not common:
        return None
    ready, running, prompt, generation, step = (np.array([d[t] for t in common]) for d in by_time)
    busy = (ready > 0) & (running >= MIN_RUNNING_PER_REPLICA * np.maximum(ready, 1)) & (step > 0)
    busy &= np.isfinite(step) & np.isfinite(prompt) & np.isfinite(generation)
    # Steady, not bursty: Little's law ties the sequences decoding to the output rate and the step time
    # (n = G T per replica). A replica that idled between bursts decoded its tokens in a few long, prefill-
    # heavy iterations, and its step time says nothing of its load: its n at the scrape is far from G T.
    implied = generation * step
    busy &= (running >= LITTLE_BAND * implied) & (running <= implied / LITTLE_BAND)
    # Settled: the same Ready replicas for the whole rate window before the step. Right after a replica
    # joins, the load is uneven across replicas, and the token-weighted step time of the busy ones reads
    # above what the fleet average predicts (a / (1 - rho) is convex): that inflates the costs.
    times = np.array(common)
    ready_at = dict(zip(common, ready, strict=True))
    step_s = _step(times)  # once, not per step: it was a fifth of the simulator's scaler policy (cProfile)
    for lag in range(1, SETTLED_STEPS + 1):
        prev = np.array([ready_at.get(t - lag * step_s, np.nan) for t in common])
        busy &= prev == ready
    if not busy.any():
        return None
    r = ready[busy]
    return np.array(common)[busy], prompt[busy] / r, generation[busy] / r, step[busy]


def _step(times: np.ndarray) -> float:
    return float(np.min(np.diff(times))) if len(times) > 1 else 0.0


def request_mix(
    signals: Signals, history: Mapping[Measure, Series], now_s: float
) -> tuple[float, float, bool]:
    """(prompt tokens, output tokens) per request, averaged over the last MIX_WINDOW_S of history (the
    signals now when history has none), and whether it was measured."""
    totals = []
    for measure in (Measure.PROMPT_TOKENS, Measure.GENERATION_TOKENS, Measure.REQUESTS):
        s = history.get(measure)
        vals = (
            [v for t, v in zip(s.times_s, s.values, strict=True) if now_s - MIX_WINDOW_S < t <= now_s]
            if s
            else []
        )
        totals.append(sum(vals))
    prompt, output, requests = totals
    if requests <= 0:
        prompt = signals.prompt_tokens_per_s or 0.0
        output = signals.generation_tokens_per_s or 0.0
        requests = signals.requests_per_s or 0.0
    if requests <= 0 or prompt <= 0:
        return PRIOR_PROMPT_TOKENS, PRIOR_OUTPUT_TOKENS, False
    return prompt / requests, max(1.0, output / requests), True


def utilisation_target(
    cost: CostModel, prompt_tokens: float, output_tokens: float, slo_s: float | None, metric: LatencyMetric
) -> tuple[float, str]:
    """The utilisation at which the typical request uses TYPICAL_SHARE_OF_SLO of the SLO.

    TTFT: a typical request waits ITERATIONS_TO_FIRST_TOKEN iterations and its own prefill, ``c I + k T``;
    e2e adds one iteration per output token, ``c I + (k + O) T``. With ``T = a / (1 - rho)`` the bound
    ``c I + m a / (1 - rho) <= share x SLO`` gives ``rho <= 1 - m a / (share x SLO - c I)``. Worked example:
    TTFT SLO 1 s, a = 14 ms, c I = 81 ms: 1 - 2 x 0.014 / (0.5 - 0.081) = 0.93, so RHO_MAX (0.8) binds;
    an e2e SLO of 10 s with O = 211: 1 - 213 x 0.014 / (5 - 0.081) = 0.39.
    """
    if slo_s is None:
        return RHO_MAX, ""
    iterations = ITERATIONS_TO_FIRST_TOKEN + (output_tokens if metric == LatencyMetric.E2E else 0.0)
    room_s = TYPICAL_SHARE_OF_SLO * slo_s - cost.prefill_s_per_token * prompt_tokens
    if room_s <= iterations * cost.step_base_s:
        return RHO_MIN, (
            "the SLO leaves no room for queueing: a typical request needs "
            f"{2 * (slo_s * 0.5 - room_s):.3g} s of it unloaded; sized at the minimum utilisation"
        )
    rho = 1.0 - iterations * cost.step_base_s / room_s
    return min(RHO_MAX, max(RHO_MIN, rho)), ""


def demonstrated_per_s(
    windows: Sequence[LatencyWindow],
    history: Mapping[Measure, Series],
    cost: CostModel,
    work_now_s: float,
    slo_s: float,
    target: float,
    window_s: float = 60.0,
) -> float | None:
    """Requests/s per replica, at today's mix, that a past minute showed one replica serves within the SLO.

    The model extrapolates from the step time, which cannot place its base when a Deployment always runs
    at one load; a minute in which ``k`` Ready replicas served ``n`` requests and the target fraction met
    the SLO is direct evidence that one replica serves ``n / 60 / k`` per second of that minute's mix. The
    largest such minute, converted to today's mix by the model's own costs (only their ratio matters), is a
    floor on the capacity. Worked example: a minute of 330 requests on one replica, all within the SLO, at
    the mix of today: at least 5.5 requests/s per replica.
    """
    best = 0.0
    by_end = {round(w.end_s, 3): w for w in windows}
    for w in windows:
        if w.requests < DEMONSTRATION_MIN_REQUESTS or w.ready < 1:
            continue
        if attainment_at(w, w.ready, slo_s) < target:
            continue
        # Not contradicted: the minute after it, on no more replicas, met the target too. A replica falling
        # behind serves its first requests in time while its backlog builds: one replica on the conversation
        # trace replayed at twice its speed served 595 requests in a minute, all in time, and a minute later
        # 49 % were. Counted, that minute "showed" 13 requests/s per replica where the model's was 5.3, and
        # 11.9 requests/s were sized at one replica, which fell behind (0.76 attainment where the static
        # fleet of two got 1.0). The latest minute has no minute after it yet and counts: the first minute
        # of a crowd that one replica serves in time is what keeps a second from starting (waiting a minute
        # for the confirmation took flash-crowd-s1 from 10.07 to 10.50 GPU-h, 3 cold starts, at 1.0).
        after = by_end.get(round(w.end_s + window_s, 3))
        if after is not None and (
            after.ready > w.ready
            or (
                after.requests >= DEMONSTRATION_MIN_REQUESTS
                and attainment_at(after, after.ready, slo_s) < target
            )
        ):
            continue
        prompt, output = _mix_between(history, w.end_s - window_s, w.end_s)
        if prompt is None or output is None:
            continue
        work_then = cost.prefill_s_per_token * prompt + cost.decode_s_per_token * output
        best = max(best, w.requests / window_s / w.ready * work_then)
    return best / work_now_s if best > 0 else None


def _mix_between(
    history: Mapping[Measure, Series], start_s: float, end_s: float
) -> tuple[float | None, float | None]:
    totals = []
    for measure in (Measure.PROMPT_TOKENS, Measure.GENERATION_TOKENS, Measure.REQUESTS):
        s = history.get(measure)
        if not s:
            totals.append(0.0)
            continue
        # The points in (start_s, end_s] of times sorted oldest first, summed in the same order as a scan
        # of the whole series would (the same float); bisect instead of a scan per latency window.
        lo, hi = bisect.bisect_right(s.times_s, start_s), bisect.bisect_right(s.times_s, end_s)
        totals.append(sum(s.values[lo:hi]))
    prompt, output, requests = totals
    if requests <= 0:
        return None, None
    return prompt / requests, max(1.0, output / requests)


def estimate_capacity(
    signals: Signals,
    history: Mapping[Measure, Series],
    slo_s: float | None,
    metric: LatencyMetric,
    now_s: float,
    windows: Sequence[LatencyWindow] = (),
    target: float = 0.99,
) -> Capacity:
    """The capacity of one Ready replica for the current mix: the learned (or prior) costs at the
    utilisation the SLO allows, and no less than what a past minute demonstrated."""
    cost = learn_costs(history)
    prompt, output, measured = request_mix(signals, history, now_s)
    work = cost.prefill_s_per_token * prompt + cost.decode_s_per_token * output
    rho, note = utilisation_target(cost, prompt, output, slo_s, metric)
    shown = demonstrated_per_s(windows, history, cost, work, slo_s, target) if slo_s is not None else None
    per_s = max(rho / work, shown or 0.0)
    return Capacity(cost, prompt, output, measured, work, rho, per_s, note, shown)
