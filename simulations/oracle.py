"""The oracle: a lower bound on the GPU-hours of any policy on a trace."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulations.profile import HardwareProfile
from simulations.trace import Trace


# -- the oracle ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleBound:
    gpu_hours: float
    busy_bound_s: float
    binned_bound_s: float
    bin_s: float
    replicas_per_bin: np.ndarray  # the binned bound as replicas, per bin (for plots)


def oracle_bound(trace: Trace, p: HardwareProfile, ttft_slo_s: float, grid_s: float = 0.1) -> OracleBound:
    """A lower bound on the GPU-hours of ANY policy that serves every request of the trace within the TTFT
    SLO, even with perfect knowledge of the future and free, instant cold starts. It is the larger of two
    bounds, each of which such a policy's replica-time must exceed under the replica model:

    1. Work: every prompt token costs ``prefill_token_s`` and every later output token at least
       ``per_seq_s + base_s / max_num_seqs`` (the cost per token of the largest batch), so the sum of busy
       time is at least that total, whatever the batching.
    2. Per time bin (2, 5, 10, 60 or 300 s, each longer than the SLO; the best is kept): in bin k,
       replica-time is at least (a) the time some request is surely in service: its first token comes by
       arrival + SLO at the latest and decoding then runs every iteration until done, so a replica exists
       from arrival + SLO until arrival + its fastest possible service (prompt alone + one decode step per
       token at batch 1); and (b) the prefill work of the requests that arrive in the bin early enough that
       their TTFT SLO also ends inside it (their prompts must be done by replicas present in this bin, each
       prefilling at most 1 / prefill_token_s tokens per second).

    Loading time is not counted at all, so no real policy (which pays cold starts) can reach it; it is a
    bound, not a schedule, and its slack is the price of integer replicas, batching below the maximum and
    cold starts. A policy that misses the SLO for some requests is bound by (1) only.
    """
    a = trace.arrival_s
    if p.backend == "triton":
        inp = np.ones(len(trace))
        out = np.ones(len(trace))
    else:
        inp = trace.input_tokens.astype(np.float64)
        out = trace.output_tokens.astype(np.float64)
    busy = float(
        (inp * p.prefill_token_s).sum() + ((out - 1) * (p.per_seq_s + p.base_s / p.max_num_seqs)).sum()
    )
    prefill_iters = np.ceil(inp / p.max_num_batched_tokens)
    service = prefill_iters * p.base_s + inp * p.prefill_token_s + (out - 1) * p.decode_step_s(1)
    horizon = float(a.max() + service.max()) + 1.0
    cells = math.ceil(horizon / grid_s) + 2
    diff = np.zeros(cells + 1)
    # Only whole cells inside an interval count: rounding inwards keeps it a lower bound.
    start = np.ceil((a + ttft_slo_s) / grid_s).astype(np.int64)
    end = np.floor((a + service) / grid_s).astype(np.int64)
    ok = end > start
    np.add.at(diff, start[ok], 1)
    np.add.at(diff, end[ok], -1)
    covered = (np.cumsum(diff)[:cells] > 0).astype(np.float64) * grid_s
    best, best_bin, best_curve = 0.0, 60.0, np.zeros(1)
    for bin_s in (2.0, 5.0, 10.0, 60.0, 300.0):
        if bin_s <= ttft_slo_s:
            continue  # (b) needs the SLO to end inside the bin
        nb = math.ceil(horizon / bin_s) + 1
        cell_bin = (np.arange(cells) * grid_s // bin_s).astype(np.int64)
        presence = np.bincount(cell_bin, weights=covered, minlength=nb)[:nb]
        k = (a // bin_s).astype(np.int64)
        inside = a + ttft_slo_s <= (k + 1) * bin_s
        prefill = np.bincount(k[inside], weights=inp[inside] * p.prefill_token_s, minlength=nb)[:nb]
        per_bin = np.maximum(presence, prefill)
        total = float(per_bin.sum())
        if total > best or (bin_s == 60.0 and best == 0.0):
            best, best_bin, best_curve = total, bin_s, per_bin / bin_s
    bound_s = max(busy, best)
    return OracleBound(bound_s * p.gpus_per_replica / 3600.0, busy, best, best_bin, best_curve)
