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


def cummax_in_group(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Running maximum restarting at each group: [2, 1 | 0, 3] -> [2, 2 | 0, 3]. Each group is lifted above
    every earlier one (by its rank times the whole range), so one accumulate never carries across groups."""
    if not len(values):
        return values.copy()
    rank = np.cumsum(offsets == np.arange(len(values))) - 1
    span = float(values.max() - values.min()) + 1.0
    lifted: np.ndarray = np.maximum.accumulate(values + rank * span)
    out: np.ndarray = lifted - rank * span
    return out


@dataclass
class StepOutcome:
    prefill_done_at_s: np.ndarray  # per running request: time its prompt finished this step, NaN if not
    finished_at_s: np.ndarray  # per running request: completion time this step, NaN if not
    prompt_tokens: np.ndarray  # per replica: prompt tokens processed
    generated_tokens: np.ndarray  # per replica: output tokens emitted (incl. first tokens)
    busy_fraction: np.ndarray  # per replica: fraction of the step the GPU ran kernels
    # Per replica, the gaps between successive output tokens of the sequences decoding: mixed iterations (a
    # prompt chunk in the batch) and pure decode ones, each with the tokens emitted at that gap.
    itl_mixed_s: np.ndarray
    itl_decode_s: np.ndarray
    tokens_mixed: np.ndarray
    tokens_decode: np.ndarray
    # Per replica: engine iterations run (an executor with nothing in its batch does not iterate).
    iterations: np.ndarray


def serve(
    p: HardwareProfile,
    t_s: float,
    dt_s: float,
    n_replicas: int,
    rep: np.ndarray,
    prefill_left: np.ndarray,
    decode_left: np.ndarray,
    prompt_tokens: np.ndarray,
    release_s: np.ndarray | None = None,
) -> StepOutcome:
    """Advance every running request (in arrival order) by one step; updates the two *_left arrays in place.

    ``release_s``: when each request reached the engine; a prompt arriving inside the step is not worked on
    before it arrives (arrivals are admitted at their own time, not at the next step boundary).

    Worked example (70B profile, one replica): 20 sequences decoding and a 4,000-token prompt pending. The
    mixed iteration takes 14 + 0.28 x 20 + 0.070 x 4,000 = 299.6 ms and finishes the prompt in one go, so in a
    250 ms step it is 83 % done; decoding meanwhile advances 0.83 tokens per sequence.
    """
    n = len(rep)
    in_prefill = prefill_left > 0
    batch = np.bincount(rep[~in_prefill], minlength=n_replicas).astype(np.float64)
    room = np.maximum(float(p.max_num_batched_tokens) - batch, 1.0)  # prompt tokens an iteration can take
    iter_decode = p.base_s + p.per_seq_s * batch

    prefill_done_at = np.full(n, np.nan)
    finished_at = np.full(n, np.nan)
    gen = np.zeros(n_replicas)
    t_pre: np.ndarray = np.zeros(n_replicas)
    mixed_iters: np.ndarray = np.zeros(n_replicas)
    prompt_done: np.ndarray = np.zeros(n_replicas)

    # Prompts, FCFS within each replica, as one server that idles until a prompt arrives: completion
    # C_i = max(C_(i-1), release_i) + work_i, i.e. S_i + max over j <= i of (release_j - S_(j-1)) with S
    # the running sum of work (Lindley's recursion, vectorised). Worked example, in seconds from the step
    # start: prompts of 0.05 and 0.02 s of work released at 0 and 0.1: the first completes at 0.05, the
    # server idles, the second completes at 0.12 (not 0.07).
    idx = np.flatnonzero(in_prefill)
    if len(idx):
        r = rep[idx]
        order = np.argsort(r, kind="stable")
        idx, r = idx[order], r[order]
        left = prefill_left[idx]
        full = prompt_tokens[idx]
        rel = np.zeros(len(idx)) if release_s is None else np.clip(release_s[idx] - t_s, 0.0, None)
        waiting = rel <= 0
        # Prompts waiting at the step start share iterations: the chunk is set by the whole prompts pending,
        # not what is left of them (a 200-token prompt started in one iteration costs one base_s, however
        # many steps of dt that iteration spans). A prompt arriving inside the step runs in iterations of
        # its own (not batched with ones already pending: a slight overestimate when they overlap).
        pending = np.bincount(r[waiting], weights=full[waiting], minlength=n_replicas)
        chunk = np.minimum(room[r], np.where(waiting, pending[r], full))
        iteration = p.base_s + p.per_seq_s * batch[r] + p.prefill_token_s * chunk
        rate = chunk / iteration  # prompt tokens per second while this prompt is prefilled
        work = left / rate
        off = group_offsets(r)
        cum = cumsum_in_group(work, off)
        # Without a prompt arriving inside the step the server never idles: C_i = S_i.
        done_at = cum + cummax_in_group(rel - (cum - work), off) if rel.any() else cum
        started = done_at - work
        done = done_at <= dt_s * (1 + 1e-9) + 1e-12
        busy_s = np.where(done, work, np.clip(dt_s - started, 0.0, work))
        processed = np.where(done, left, busy_s * rate)
        prefill_left[idx] = np.where(done, 0.0, np.maximum(left - processed, 0.0))
        t_pre = np.minimum(np.bincount(r, weights=busy_s, minlength=n_replicas), dt_s)
        mixed_iters = np.bincount(r, weights=busy_s / iteration, minlength=n_replicas)
        prompt_done = np.bincount(r, weights=processed, minlength=n_replicas)
        when = t_s + done_at
        prefill_done_at[idx[done]] = when[done]
        gen += np.bincount(r[done], minlength=n_replicas)  # the first token comes with the prompt
        # A one-token answer (and every Triton request) is complete when its prompt is.
        single = done & (decode_left[idx] <= 0)
        finished_at[idx[single]] = when[single]
    decode_iters = mixed_iters + (dt_s - t_pre) / iter_decode
    # The mean duration of the mixed iterations (the gap decoding sequences see while a prompt is prefilled).
    iter_mixed = np.divide(t_pre, mixed_iters, out=iter_decode.copy(), where=mixed_iters > 0)
    busy = np.where(batch > 0, 1.0, t_pre / dt_s)

    # Decode: sequences that were decoding at the start of the step.
    tokens_mixed: np.ndarray = np.zeros(n_replicas)
    tokens_decode: np.ndarray = np.zeros(n_replicas)
    d = np.flatnonzero(~in_prefill)
    if len(d):
        r = rep[d]
        k = decode_iters[r]
        left = decode_left[d]
        fin = left <= k
        emitted = np.minimum(left, k)
        per_replica = np.bincount(r, weights=emitted, minlength=n_replicas)
        gen += per_replica
        share_mixed = np.divide(mixed_iters, decode_iters, out=np.zeros(n_replicas), where=decode_iters > 0)
        tokens_mixed = per_replica * share_mixed
        tokens_decode = per_replica - tokens_mixed
        decode_left[d] = left - emitted
        finished_at[d[fin]] = t_s + dt_s * (left[fin] / np.maximum(k[fin], 1e-12))
    return StepOutcome(
        prefill_done_at,
        finished_at,
        prompt_done,
        gen,
        busy,
        itl_mixed_s=iter_mixed,
        itl_decode_s=iter_decode,
        tokens_mixed=tokens_mixed,
        tokens_decode=tokens_decode,
        iterations=np.where(batch > 0, decode_iters, mixed_iters),
    )
