"""The serving model of one replica, vectorised over every replica of a fleet.

vLLM (continuous batching, chunked prefill, V1 scheduler): each engine iteration decodes one token for every
running sequence and fills the rest of the ``max_num_batched_tokens`` budget with prompt chunks, first come
first served. An iteration costs ``base_s + per_seq_s x decoding + prefill_token_s x chunk`` (see
``profile``). Over a step of ``dt`` this is integrated as a fluid: while prompts are pending the replica runs
mixed iterations, afterwards pure decode ones. The first token comes out of the iteration that finishes the
prompt (TTFT), the rest one per iteration. Admission: FCFS while fewer than ``max_num_seqs`` run and the KV
cache holds the prompt plus the whole output (vLLM allocates blocks lazily and preempts; reserving up front
is the conservative simplification).

Triton (dynamic batching): the same step with no decode phase: a batch of up to ``max_batch_size`` items
takes ``base_s + prefill_token_s x items``; a request is one item and completes with its batch.

Pure functions of arrays: the fleet owns the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.profile import HardwareProfile


def group_offsets(groups: np.ndarray) -> np.ndarray:
    """For a sorted array of group ids, the index where each element's group starts."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(groups[1:], groups[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    lengths = np.empty(len(starts), dtype=np.int64)
    lengths[:-1] = starts[1:] - starts[:-1]
    lengths[-1] = n - starts[-1]
    return np.repeat(starts, lengths)


def cumsum_in_group(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inclusive running sum restarting at each group: [2, 3 | 4, 1] -> [2, 5 | 4, 5]."""
    c: np.ndarray = np.cumsum(values)
    before: np.ndarray = c[offsets] - values[offsets]
    out: np.ndarray = c - before
    return out


def admit(
    rep: np.ndarray, need_tokens: np.ndarray, free_slots: np.ndarray, free_kv: np.ndarray
) -> np.ndarray:
    """Which waiting requests (given in arrival order) each replica admits now: a FCFS prefix per replica.

    Worked example: replica 0 has 2 free slots and waiting requests a, b, c: a and b are admitted, c waits
    (head-of-line order is kept, so a later short request never jumps a long one).
    """
    order = np.argsort(rep, kind="stable")
    r = rep[order]
    off = group_offsets(r)
    rank = np.arange(len(r)) - off
    cum = cumsum_in_group(need_tokens[order].astype(np.float64), off)
    ok_sorted = (rank < free_slots[r]) & (cum <= free_kv[r])
    ok = np.empty(len(rep), dtype=bool)
    ok[order] = ok_sorted
    return ok


@dataclass
class StepOutcome:
    prefill_done_at_s: np.ndarray  # per running request: time its prompt finished this step, NaN if not
    finished_at_s: np.ndarray  # per running request: completion time this step, NaN if not
    prompt_tokens: np.ndarray  # per replica: prompt tokens processed
    generated_tokens: np.ndarray  # per replica: output tokens emitted (incl. first tokens)
    busy_fraction: np.ndarray  # per replica: fraction of the step the GPU ran kernels
    itl_sum_s: np.ndarray  # per replica: sum of the gaps before each decoded token (vLLM's ITL histogram)
    itl_count: np.ndarray  # per replica: decoded tokens (after the first)


def serve(
    p: HardwareProfile,
    t_s: float,
    dt_s: float,
    n_replicas: int,
    rep: np.ndarray,
    prefill_left: np.ndarray,
    decode_left: np.ndarray,
    prompt_tokens: np.ndarray,
) -> StepOutcome:
    """Advance every running request (in arrival order) by one step; updates the two *_left arrays in place.

    Worked example (70B profile, one replica): 20 sequences decoding and a 4,000-token prompt pending. The
    mixed iteration takes 14 + 0.28 x 20 + 0.070 x 4,000 = 299.6 ms and finishes the prompt in one go, so in a
    250 ms step it is 83 % done; decoding meanwhile advances 0.83 tokens per sequence.
    """
    n = len(rep)
    in_prefill = prefill_left > 0
    pre_w = np.bincount(rep[in_prefill], weights=prefill_left[in_prefill], minlength=n_replicas)
    batch = np.bincount(rep[~in_prefill], minlength=n_replicas).astype(np.float64)
    # The chunk size is set by the whole prompts pending, not what is left of them: a 200-token prompt
    # started in one iteration costs one base_s, however many steps of dt that iteration spans.
    pre_full = np.bincount(rep[in_prefill], weights=prompt_tokens[in_prefill], minlength=n_replicas)
    budget = float(p.max_num_batched_tokens)
    chunk = np.minimum(np.maximum(budget - batch, 1.0), pre_full)
    iter_mixed = p.base_s + p.per_seq_s * batch + p.prefill_token_s * chunk
    iter_decode = p.base_s + p.per_seq_s * batch
    has_pre = pre_w > 0
    needed_s = np.where(has_pre, pre_w / np.maximum(chunk, 1e-12) * iter_mixed, 0.0)
    t_pre = np.minimum(dt_s, needed_s)
    prompt_done = np.where(has_pre, t_pre / iter_mixed * chunk, 0.0)
    decode_iters = np.where(has_pre, t_pre / iter_mixed, 0.0) + (dt_s - t_pre) / iter_decode
    busy = np.where(batch > 0, 1.0, t_pre / dt_s)

    prefill_done_at = np.full(n, np.nan)
    finished_at = np.full(n, np.nan)
    gen = np.zeros(n_replicas)
    itl_sum = np.zeros(n_replicas)
    itl_count = np.zeros(n_replicas)

    # Prompts, FCFS within each replica.
    idx = np.flatnonzero(in_prefill)
    if len(idx):
        r = rep[idx]
        order = np.argsort(r, kind="stable")
        idx, r = idx[order], r[order]
        left = prefill_left[idx]
        cum = cumsum_in_group(left, group_offsets(r))
        cap = prompt_done[r]
        done = cum <= cap * (1 + 1e-9) + 1e-9
        processed = np.clip(cap - (cum - left), 0.0, left)
        prefill_left[idx] = np.where(done, 0.0, left - processed)
        frac = np.where(cap > 0, np.minimum(cum / np.maximum(cap, 1e-12), 1.0), 1.0)
        when = t_s + frac * t_pre[r]
        prefill_done_at[idx[done]] = when[done]
        gen += np.bincount(r[done], minlength=n_replicas)  # the first token comes with the prompt
        # A one-token answer (and every Triton request) is complete when its prompt is.
        single = done & (decode_left[idx] <= 0)
        finished_at[idx[single]] = when[single]

    # Decode: sequences that were decoding at the start of the step.
    d = np.flatnonzero(~in_prefill)
    if len(d):
        r = rep[d]
        k = decode_iters[r]
        left = decode_left[d]
        fin = left <= k
        emitted = np.minimum(left, k)
        gen += np.bincount(r, weights=emitted, minlength=n_replicas)
        # Each decoded token came one iteration after the previous: dt / k apart on this replica.
        itl_sum += np.bincount(r, weights=emitted * dt_s / np.maximum(k, 1e-12), minlength=n_replicas)
        itl_count += np.bincount(r, weights=emitted, minlength=n_replicas)
        decode_left[d] = left - emitted
        finished_at[d[fin]] = t_s + dt_s * (left[fin] / np.maximum(k[fin], 1e-12))
    return StepOutcome(prefill_done_at, finished_at, prompt_done, gen, busy, itl_sum, itl_count)


def closed_loop(
    p: HardwareProfile,
    concurrency: int,
    input_tokens: int,
    output_tokens: int,
    duration_s: float = 20.0,
    dt_s: float = 0.002,
) -> dict[str, float]:
    """Keep ``concurrency`` identical requests in flight on one replica (a benchmark client) and measure
    TTFT p50, TPOT p50 and output tokens/s over the second half of the run."""
    rep = np.zeros(concurrency, dtype=np.int64)
    prefill = np.full(concurrency, float(input_tokens))
    decode = np.full(concurrency, float(output_tokens - 1))
    full = np.full(concurrency, float(input_tokens))
    started = np.zeros(concurrency)
    first = np.full(concurrency, np.nan)
    ttfts: list[float] = []
    tpots: list[float] = []
    tokens = 0.0
    t = 0.0
    half = duration_s / 2
    while t < duration_s:
        out = serve(p, t, dt_s, 1, rep, prefill, decode, full)
        got = ~np.isnan(out.prefill_done_at_s)
        first[got] = out.prefill_done_at_s[got]
        if t >= half:
            tokens += float(out.generated_tokens.sum())
        done = np.flatnonzero(~np.isnan(out.finished_at_s))
        for i in done:
            fin = out.finished_at_s[i]
            if t >= half:
                ttfts.append(first[i] - started[i])
                if output_tokens > 1:
                    tpots.append((fin - first[i]) / (output_tokens - 1))
            started[i] = fin  # the client sends the next request at once
            prefill[i] = float(input_tokens)
            decode[i] = float(output_tokens - 1)
            first[i] = np.nan
        t += dt_s
    return {
        "ttft_p50_s": float(np.median(ttfts)) if ttfts else float("nan"),
        "tpot_p50_s": float(np.median(tpots)) if tpots else float("nan"),
        "output_tokens_per_s": tokens / (duration_s - half),
    }
