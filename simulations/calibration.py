"""Published benchmark runs replayed on the replica model, to check a profile against its figures.

Two kinds of run, as the sources ran them:
- closed loop (``Calibration.concurrency``): a benchmark client keeps that many identical requests in flight
  (vLLM's ``benchmark_serving`` with a fixed number of prompts at ``rps=inf`` behaves so once the engine
  holds ``max_num_seqs``). Clients start staggered over one request's duration, so the engine sees requests
  at every stage, as with real prompts of varied lengths, not a synchronised wave.
- open loop (``Calibration.arrival_rate_per_s``): Poisson arrivals at that rate into one replica of the
  simulated fleet (its admission, KV cache and chunked prefill), as ``bench_serving --request-rate``.

Both report p50 TTFT, p50 TPOT ((e2e - TTFT) / (output - 1)), p50 e2e and output tokens/s over the run's
second half.
"""

from __future__ import annotations

import numpy as np

from simulations.fleet import Fleet, FleetConfig
from simulations.profile import Calibration, HardwareProfile
from simulations.replica import serve
from simulations.trace import Trace


def reproduce(p: HardwareProfile, cal: Calibration, dt_s: float = 0.005, seed: int = 0) -> dict[str, float]:
    """The figures ``cal`` publishes, as the model gives them."""
    if cal.arrival_rate_per_s is not None:
        return open_loop(p, cal.arrival_rate_per_s, cal.input_tokens, cal.output_tokens, dt_s=dt_s, seed=seed)
    # Long enough for every client to complete a few requests in the measured half.
    duration_s = max(40.0, 6.0 * cal.output_tokens * p.decode_step_s(cal.concurrency))
    return closed_loop(p, cal.concurrency, cal.input_tokens, cal.output_tokens, duration_s, dt_s)


def closed_loop(
    p: HardwareProfile,
    concurrency: int,
    input_tokens: int,
    output_tokens: int,
    duration_s: float = 40.0,
    dt_s: float = 0.005,
) -> dict[str, float]:
    """Keep ``concurrency`` identical requests in flight on one replica and measure over the second half."""
    rep = np.zeros(concurrency, dtype=np.int64)
    # Staggered: client i starts its first request i / concurrency of the way through its output, so
    # completions (and the prompts that follow them) are spread out from the start.
    prefill = np.zeros(concurrency)
    decode = np.floor(np.arange(concurrency) / concurrency * (output_tokens - 1))
    full = np.full(concurrency, float(input_tokens))
    started = np.full(concurrency, np.nan)
    first = np.full(concurrency, np.nan)
    ttfts: list[float] = []
    tpots: list[float] = []
    e2es: list[float] = []
    tokens = 0.0
    t = 0.0
    half = duration_s / 2
    while t < duration_s:
        out = serve(p, t, dt_s, 1, rep, prefill, decode, full, release_s=started)
        got = ~np.isnan(out.prefill_done_at_s)
        first[got] = out.prefill_done_at_s[got]
        if t >= half:
            tokens += float(out.generated_tokens.sum())
        for i in np.flatnonzero(~np.isnan(out.finished_at_s)):
            fin = out.finished_at_s[i]
            if t >= half and not np.isnan(started[i]):
                ttfts.append(first[i] - started[i])
                e2es.append(fin - started[i])
                if output_tokens > 1:
                    tpots.append((fin - first[i]) / (output_tokens - 1))
            started[i] = fin  # the client sends the next request at once
            prefill[i] = float(input_tokens)
            decode[i] = float(output_tokens - 1)
            first[i] = np.nan
        t += dt_s
    return _figures(ttfts, tpots, e2es, tokens / (duration_s - half))


def open_loop(
    p: HardwareProfile,
    rate_per_s: float,
    input_tokens: int,
    output_tokens: int,
    duration_s: float = 120.0,
    dt_s: float = 0.005,
    seed: int = 0,
) -> dict[str, float]:
    """Poisson arrivals at ``rate_per_s`` into one Ready replica of the fleet; requests arriving in the
    second half are measured, and the run continues until they are done."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate_per_s, int(rate_per_s * duration_s * 1.5) + 10))
    arrivals = arrivals[arrivals < duration_s]
    n = len(arrivals)
    trace = Trace("open-loop", arrivals, np.full(n, input_tokens), np.full(n, output_tokens))
    fleet = Fleet(trace, FleetConfig(p, max_replicas=1), initial_replicas=1)
    half = duration_s / 2
    k, tokens = 0, 0.0
    measured = arrivals >= half
    while np.isnan(fleet.e2e[measured]).any() and k * dt_s < 4 * duration_s:
        t = k * dt_s
        before = float(fleet.gen_total.sum())
        fleet.step(t, dt_s)
        if half <= t < duration_s:
            tokens += float(fleet.gen_total.sum()) - before
        k += 1
    ttft, e2e = fleet.ttft[measured], fleet.e2e[measured]
    tpot = (e2e - ttft) / max(output_tokens - 1, 1)
    return _figures(list(ttft), list(tpot), list(e2e), tokens / (duration_s - half))


def _figures(ttft: list[float], tpot: list[float], e2e: list[float], tokens_per_s: float) -> dict[str, float]:
    def p50(x: list[float]) -> float:
        return float(np.median(x)) if x else float("nan")

    return {
        "ttft_p50_s": p50(ttft),
        "tpot_p50_s": p50(tpot),
        "e2e_p50_s": p50(e2e),
        "output_tokens_per_s": tokens_per_s,
    }
