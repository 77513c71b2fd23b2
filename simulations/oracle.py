"""The oracle: a lower bound on the GPU-hours of any policy on a trace, cold starts paid.

``oracle_bound(trace, sim)`` solves a linear programme (scipy's HiGHS) whose optimum no policy that serves
every request it can in time beats under the replica model of ``simulations.replica`` and
``simulations.fleet``; ``OracleBound.at_met(m)`` is the bound for a policy that met the SLO for m
requests. The LP's replica schedule is also what the ``hindsight`` policy replays
(``simulations.baselines.HindsightPolicy``).

The programme, over the simulator's steps k = 0..T-1 of ``dt`` (the fleet changes its replicas only
between steps, so a count per step is exact), horizon H = ceil(last arrival) + tail (where the simulator
stops and counts what is unfinished as dropped):

- ``n_k`` serving replicas in step k (Ready or draining: those that can do work), ``u`` the replicas Ready
  at 0 (free: ``static-peak`` starts warm), ``a_k`` replicas becoming Ready at step k: n_k <= n_{k-1} + a_k.
- Objective: dt x sum n_k + sum c_k a_k replica-seconds, c_k = min(L, t_k), L the shortest possible cold
  start, ceil(cold_start_s x (1 - jitter) / dt) steps of dt (the fleet draws each start from
  cold_start_s x U(1 - j, 1 + j) and a pod holds its GPUs from the step it is created until the step it is
  Ready). Times gpus_per_replica / 3600: GPU-hours.
- Work, in replica-seconds: a prompt token costs at least beta = prefill_token_s (vLLM; Triton, which has
  no decode, also pays base_s / max_num_batched_tokens per item); an output token after the first at least
  alpha = per_seq_s + base_s / max_num_seqs (the cost per token of the largest batch). An iteration with B
  sequences decoding and a chunk of c prompt tokens takes base_s + per_seq_s B + prefill_token_s c >=
  alpha B + beta c (B <= max_num_seqs), so a replica does at most dt of work in a step: P_k + D_k <= dt n_k
  (P prefill, D decode work of the requests that meet the SLO, done in step k).
- Prefill of request i (deadline d_i = a_i + sim.ttft_deadline_s(prompt)) is done inside [a_i, d_i]; its
  decode after a_i and before min(H, d_i + (out_i - 1) x the longest iteration) (a request decodes one
  token every iteration once its prompt is done: no preemption in the model). As cumulative constraints:
  work done by the end of step k is at most the work released by then and at least the work due by then
  (with the parts of a step before its first arrival and after its last deadline taken out: work released
  in step k can use only n_k x (t_{k+1} - earliest arrival) of it, and work due in step k only
  n_k x (latest deadline - t_k)).
- In service: request i is surely admitted from d_i (its prompt is done by then) until a_i + its fastest
  possible service (prompt alone at 1 / beta' tokens/s, beta' = prefill_token_s + base_s /
  max_num_batched_tokens, then (out - 1) iterations of at least base_s + per_seq_s). While it is, some
  replica serves it, and at most max_num_seqs sequences and kv_cache_tokens of (prompt + output) fit on
  one, so n(t) >= max(ceil(count(t) / max_num_seqs), ceil(kv(t) / kv_cache_tokens)): an integer, so one
  request in service already needs a whole replica. Integrated over each step, a lower bound on n_k.

**Proof that it is a bound.** Take any policy's run in which the set S of requests meets the SLO. Let n_k
be its serving replicas in step k, u its Ready replicas at 0, a_k the replicas that became Ready in step k,
and P_k, D_k the prefill and decode work (at the per-token floors beta, alpha) it did in step k for the
requests in S. Each constraint above holds for these values (each bullet says why), so they are a feasible
point of the programme with S's y_i = 1. Its GPU time is sum_k holding_k dt >= sum_k n_k dt + (loading
time of every replica that became Ready) >= the objective at that point, because each such replica loaded
for at least L inside the run, or since time 0 if it was already loading then (warm start): c_k. Replicas
removed while loading only add GPU time. So a policy that meets every request that can be met uses at
least the optimum: ``oracle_gpu_hours``. A request whose prompt alone takes longer than its deadline on an
idle replica can be met by no policy and is left out (``feasible_requests`` counts the others).

**What it bounds for a policy that misses some.** Give each feasible request a weight y_i in [0, 1] (1:
served in time) and replace the integer in-service floor by its convex relaxation (per step the largest of
sum y_i cov_i / max_num_seqs, sum y_i kv_i cov_i / kv_cache_tokens, and y_j cov_j of the request covering
most of the step). Released and due work are linear in y, so the optimum V(y) is convex in y (an LP's
optimum is convex in its right-hand sides and non-decreasing in a lower bound; a non-decreasing convex
function of convex functions is convex). A policy that met the set S is a feasible point at y = 1_S, so
its GPU time is at least V(1_S) >= V(1) - sum_i g_i (1 - 1_S(i)) for a subgradient g of V at y = 1,
which the LP's dual values give (``_savings``). The least of that over every S of size m leaves out the
F - m requests with the largest g_i: ``OracleBound.at_met(m)``, reported as ``bound_gpu_hours`` for each
policy at its own count of met requests. (The usable parts of a step, after its first arrival and before
its last deadline, are those of all feasible requests: for a subset they are no larger, so using them only
loosens the constraints.) It is also at least the work (at the per-token floors) of the m
cheapest requests. A first-order bound: tight near full attainment, weak far below it (at 0.77 on the
code trace it is little more than the work). Missed requests are charged nothing (they may be dropped
unserved), which keeps it a bound for every policy.

It is a relaxation: fractional replicas where nothing is surely in service, work perfectly divisible
between replicas, the cheapest batching for every token, the shortest cold start. Its slack is what a
schedule pays for integer replicas, real batches and routing; ``hindsight`` measures how much.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from simulations.policy import SimSettings
from simulations.profile import HardwareProfile
from simulations.trace import Trace


class SolverMissing(RuntimeError):
    """scipy is not installed: the bound needs its HiGHS solver (the ``sim`` extra)."""


@dataclass(frozen=True)
class OracleBound:
    gpu_hours: float  # the bound for a policy that serves every feasible request in time
    dt_s: float
    replicas: np.ndarray  # n_k of the optimum, per step of dt (fractional)
    starts: np.ndarray  # a_k of the optimum: replicas becoming Ready per step
    initial_replicas: float
    feasible_requests: int  # requests some policy could serve in time (the rest: prompt alone too long)
    requests: int
    solve_s: float
    relaxed_gpu_hours: float  # the same LP with the in-service floor relaxed to be convex in the y_i
    savings_gpu_hours: np.ndarray  # per feasible request, what leaving it out saves at most; descending
    cheapest_work_gpu_hours: np.ndarray  # per feasible request, its work at the floors; ascending

    def at_met(self, met: int) -> float:
        """The bound for a policy that served ``met`` requests within their deadline.

        Every feasible request: ``gpu_hours``. Fewer: the relaxed LP's optimum is convex in the y_i (an LP's
        optimum is convex in its right-hand sides, which are linear in y, and the floor is a maximum of
        linear functions, non-decreasing in the optimum), so it is at least its value at y = 1 minus a
        subgradient times (1 - y); the least of that over y in [0, 1] with sum y >= met leaves out the
        requests with the largest savings. Also at least the work of the ``met`` cheapest requests.
        """
        if met >= self.feasible_requests:
            return self.gpu_hours
        met = max(0, met)
        drop = self.feasible_requests - met
        tangent = self.relaxed_gpu_hours - float(self.savings_gpu_hours[:drop].sum())
        work = float(self.cheapest_work_gpu_hours[:met].sum())
        return max(tangent, work, 0.0)

    @property
    def bin_s(self) -> float:
        return 1.0

    @property
    def replicas_per_bin(self) -> np.ndarray:
        """The optimum's replicas averaged per second (for plots)."""
        per_s = max(1, round(1.0 / self.dt_s))
        n = len(self.replicas) // per_s * per_s
        out: np.ndarray = self.replicas[:n].reshape(-1, per_s).mean(axis=1)
        return out


@dataclass(frozen=True)
class _Requests:
    """Per-request quantities of the programme (arrays over the trace)."""

    arrival_s: np.ndarray
    deadline_s: np.ndarray
    prefill_work_s: np.ndarray
    decode_work_s: np.ndarray
    decode_due_s: np.ndarray
    busy_from_s: np.ndarray  # surely in service on [busy_from_s, busy_to_s)
    busy_to_s: np.ndarray
    kv_tokens: np.ndarray
    feasible: np.ndarray


def horizon_s(trace: Trace, sim: SimSettings) -> float:
    """Where the simulator stops (``engine.simulate``): unfinished requests there count as dropped."""
    return float(math.ceil(trace.span_s) + sim.tail_s)


def min_cold_start_s(sim: SimSettings) -> float:
    """The shortest loading time a replica can hold its GPUs for, in whole steps (see the module doc).

    Worked example: 60 s +/-10 %, dt 0.25 s: 54 s, 216 steps.
    """
    steps = math.ceil(sim.cold_start_s * (1.0 - sim.cold_start_jitter) / sim.dt_s - 1e-9)
    return steps * sim.dt_s


def _requests(trace: Trace, sim: SimSettings, h_s: float) -> _Requests:
    p: HardwareProfile = sim.profile
    a = trace.arrival_s.astype(np.float64)
    deadline = a + sim.ttft_deadline_s(trace.input_tokens.astype(np.float64))
    if p.per_item:
        inp = np.ones(len(trace))
        out = np.ones(len(trace))
        beta = p.prefill_token_s + p.base_s / p.max_num_batched_tokens
    else:
        inp = trace.input_tokens.astype(np.float64)
        out = trace.output_tokens.astype(np.float64)
        beta = p.prefill_token_s
    alpha = p.per_seq_s + p.base_s / p.max_num_seqs
    # The fastest a prompt goes: alone on a replica, full chunks, one base_s per chunk of
    # max_num_batched_tokens. Worked example (70B): 1,000 tokens -> 1,000 x (70 us + 14 ms / 8,192) = 71.7 ms.
    fastest_prefill_s = inp * (p.prefill_token_s + p.base_s / p.max_num_batched_tokens)
    longest_iter_s = p.base_s + p.per_seq_s * p.max_num_seqs + p.prefill_token_s * p.max_num_batched_tokens
    return _Requests(
        arrival_s=a,
        deadline_s=deadline,
        prefill_work_s=inp * beta,
        decode_work_s=(out - 1) * alpha,
        decode_due_s=np.minimum(h_s, deadline + (out - 1) * longest_iter_s),
        busy_from_s=deadline,
        busy_to_s=a + fastest_prefill_s + (out - 1) * p.decode_step_s(1),
        kv_tokens=inp + out,
        feasible=fastest_prefill_s <= deadline - a,
    )


def _cumulative_by_step(times_s: np.ndarray, weights: np.ndarray, dt_s: float, steps: int) -> np.ndarray:
    """sum of weights whose time falls in steps <= k, per k."""
    k = np.clip((times_s // dt_s).astype(np.int64), 0, steps - 1)
    out: np.ndarray = np.cumsum(np.bincount(k, weights=weights, minlength=steps)[:steps])
    return out


def _in_service_floor(r: _Requests, p: HardwareProfile, dt_s: float, steps: int) -> np.ndarray:
    """Integral over each step of max(ceil(count / max_num_seqs), ceil(kv / kv_cache_tokens)), / dt.

    count(t) and kv(t) are step functions changing at the requests' busy_from/busy_to; the integral is exact.
    """
    ok = r.feasible & (r.busy_to_s > r.busy_from_s)
    s, e, kv = r.busy_from_s[ok], r.busy_to_s[ok], r.kv_tokens[ok]
    grid = np.arange(steps + 1) * dt_s
    t = np.concatenate([s, e, grid])
    dc = np.concatenate([np.ones(len(s)), -np.ones(len(e)), np.zeros(len(grid))])
    dk = np.concatenate([kv, -kv, np.zeros(len(grid))])
    order = np.argsort(t, kind="stable")
    t, dc, dk = t[order], dc[order], dk[order]
    count = np.cumsum(dc)
    kvs = np.cumsum(dk)
    need = np.maximum(
        np.ceil(np.round(count, 6) / p.max_num_seqs), np.ceil(np.round(kvs, 3) / p.kv_cache_tokens)
    )
    seg = np.diff(t, append=t[-1])  # the value after each event holds until the next event
    area = np.clip(need, 0, None) * seg
    k = np.clip((t // dt_s).astype(np.int64), 0, steps - 1)
    out: np.ndarray = np.bincount(k, weights=area, minlength=steps)[:steps] / dt_s
    return out


def _linear_floor(r: _Requests, p: HardwareProfile, dt_s: float, steps: int) -> np.ndarray:
    """The in-service floor's convex relaxation in the y_i, at y = 1: per step the largest of
    sum cov / max_num_seqs, sum kv cov / kv_cache_tokens and the largest single cov (module docstring)."""
    ci, ck, cv = _coverage(r.busy_from_s, r.busy_to_s, dt_s, steps, r.feasible)
    seqs = np.bincount(ck, weights=cv, minlength=steps)[:steps] / p.max_num_seqs
    kv = np.bincount(ck, weights=cv * r.kv_tokens[ci], minlength=steps)[:steps] / p.kv_cache_tokens
    one = np.zeros(steps)
    np.maximum.at(one, ck, cv)
    out: np.ndarray = np.maximum(np.maximum(seqs, kv), one)
    return out


@dataclass(frozen=True)
class _Solution:
    replica_s: float
    x: np.ndarray
    marginals: dict[str, np.ndarray]


def _solve(r: _Requests, sim: SimSettings, floor: np.ndarray, steps: int) -> _Solution:
    """The LP of the module docstring, every feasible request served in time, with the given floor."""
    try:
        from scipy.optimize import linprog
        from scipy.sparse import coo_matrix
    except ImportError as exc:
        raise SolverMissing("the oracle bound needs scipy: pip install 'llm-keda-scaler[sim]'") from exc
    dt, T = sim.dt_s, steps
    t_k = np.arange(T) * dt
    L = min_cold_start_s(sim)
    f = r.feasible
    # Variables: n[T], a[T], u, CP[T], CD[T] (cumulative prefill / decode work done by the end of step k).
    n0, a0, u0, cp0, cd0 = 0, T, 2 * T, 2 * T + 1, 3 * T + 1
    nvar = 4 * T + 1
    rel_p = _cumulative_by_step(r.arrival_s[f], r.prefill_work_s[f], dt, T)
    due_p = _cumulative_by_step(r.deadline_s[f], r.prefill_work_s[f], dt, T)
    rel_d = _cumulative_by_step(r.arrival_s[f], r.decode_work_s[f], dt, T)
    due_d = _cumulative_by_step(r.decode_due_s[f], r.decode_work_s[f], dt, T)
    earliest, latest = _step_extremes(r, dt, T)
    has_arr = np.flatnonzero(np.isfinite(earliest))
    has_due = np.flatnonzero(np.isfinite(latest))
    room_arr = (t_k[has_arr] + dt) - earliest[has_arr]  # the part of a step after its first arrival
    room_due = latest[has_due] - t_k[has_due]  # the part of a step before its last deadline

    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    rhs: list[np.ndarray] = []

    def add(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, b: np.ndarray) -> slice:
        first = sum(len(x) for x in rhs)
        blocks.append((rows + first, cols, vals))
        rhs.append(b)
        return slice(first, first + len(b))

    k = np.arange(T)
    km = k[1:]
    one, neg = np.ones(T), -np.ones(T)
    # n_k - n_{k-1} - a_k <= 0 (k = 0: n_0 - u - a_0 <= 0)
    add(np.r_[k, km, k, 0], np.r_[n0 + k, n0 + km - 1, a0 + k, u0], np.r_[one, neg[1:], neg, -1.0], 0 * one)
    # CP_k - CP_{k-1} + CD_k - CD_{k-1} - dt n_k <= 0: a step's work fits its replicas.
    add(
        np.r_[k, km, k, km, k],
        np.r_[cp0 + k, cp0 + km - 1, cd0 + k, cd0 + km - 1, n0 + k],
        np.r_[one, neg[1:], one, neg[1:], -dt * one],
        0 * one,
    )
    # Work done never decreases.
    for c0 in (cp0, cd0):
        add(np.r_[km - 1, km - 1], np.r_[c0 + km - 1, c0 + km], np.r_[one[1:], neg[1:]], 0 * one[1:])
    # The step of the first arrival: CP_k - room n_k <= REL_{k-1}.
    j = np.arange(len(has_arr))
    prev_rel = np.r_[0.0, rel_p[:-1]]
    s_arr = add(
        np.r_[j, j], np.r_[cp0 + has_arr, n0 + has_arr], np.r_[np.ones(len(j)), -room_arr], prev_rel[has_arr]
    )
    # The step of the last deadline: -CP_{k-1} - room n_k <= -DUE_k (CP_{-1} = 0).
    j = np.arange(len(has_due))
    later = has_due > 0
    s_due = add(
        np.r_[j[later], j],
        np.r_[cp0 + has_due[later] - 1, n0 + has_due],
        np.r_[-np.ones(int(later.sum())), -room_due],
        -due_p[has_due],
    )
    lb = np.zeros(nvar)
    ub = np.full(nvar, np.inf)
    lb[n0 : n0 + T] = floor
    lb[cp0 : cp0 + T], ub[cp0 : cp0 + T] = due_p, rel_p
    lb[cd0 : cd0 + T], ub[cd0 : cd0 + T] = due_d, rel_d
    lb[cd0 + T - 1] = rel_d[-1]  # every decode done by the horizon
    cost = np.zeros(nvar)
    cost[n0 : n0 + T] = dt
    cost[a0 : a0 + T] = np.minimum(L, t_k)
    rows = np.concatenate([b[0] for b in blocks])
    cols = np.concatenate([b[1] for b in blocks])
    vals = np.concatenate([b[2] for b in blocks])
    b_ub = np.concatenate(rhs)
    a_ub = coo_matrix((vals, (rows, cols)), shape=(len(b_ub), nvar)).tocsr()
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=np.column_stack([lb, ub]), method="highs")
    if res.status != 0:
        raise RuntimeError(f"oracle bound: the LP solver failed: {res.message}")
    lo, hi, row = res.lower.marginals, res.upper.marginals, res.ineqlin.marginals
    # d(optimum)/d(each right-hand side): what serving less would save (see ``_partial``).
    marg = {
        "floor": lo[n0 : n0 + T],
        "due_p": lo[cp0 : cp0 + T],
        "rel_p": hi[cp0 : cp0 + T],
        "due_d": lo[cd0 : cd0 + T],
        "rel_d": hi[cd0 : cd0 + T],
        # b = REL_{k-1}, charged to REL at k - 1 (REL_{-1} = 0 depends on no request)
        "prev_rel_p": _scatter(row[s_arr][has_arr > 0], has_arr[has_arr > 0] - 1, T),
        "due_p_row": _scatter(-row[s_due], has_due, T),  # b = -DUE_k
    }
    return _Solution(float(res.fun), res.x, marg)


def _scatter(values: np.ndarray, at: np.ndarray, steps: int) -> np.ndarray:
    out = np.zeros(steps)
    np.add.at(out, at, values)
    return out


def _step_extremes(r: _Requests, dt_s: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the earliest arrival and the latest deadline of the feasible requests in it (inf if none)."""
    f = r.feasible
    a, d = r.arrival_s[f], r.deadline_s[f]
    earliest = np.full(steps, np.inf)
    np.minimum.at(earliest, np.clip((a // dt_s).astype(np.int64), 0, steps - 1), a)
    latest = np.full(steps, -np.inf)
    np.maximum.at(latest, np.clip((d // dt_s).astype(np.int64), 0, steps - 1), d)
    return earliest, latest


def oracle_bound(trace: Trace, sim: SimSettings) -> OracleBound:
    """The least GPU-hours of any policy that serves every request that can be served within its TTFT
    deadline, and the first-order bound for policies that serve fewer (``OracleBound.at_met``). See the
    module docstring for the programme and the proofs."""
    started = time.perf_counter()
    p = sim.profile
    h = horizon_s(trace, sim)
    T = round(h / sim.dt_s)
    r = _requests(trace, sim, h)
    lin = _solve(r, sim, _linear_floor(r, p, sim.dt_s, T), T)
    whole = _in_service_floor(r, p, sim.dt_s, T)
    # The integer floor is at or above the relaxed one; when the relaxed optimum already meets it, it is
    # the optimum with the integer floor too (same objective, a larger feasible set): one solve, not two.
    full = lin if bool(np.all(lin.x[:T] >= whole - 1e-7)) else _solve(r, sim, whole, T)
    x = full.x
    scale = p.gpus_per_replica / 3600.0
    return OracleBound(
        gpu_hours=full.replica_s * scale,
        dt_s=sim.dt_s,
        replicas=x[:T].copy(),
        starts=x[T : 2 * T].copy(),
        initial_replicas=float(x[2 * T]),
        feasible_requests=int(r.feasible.sum()),
        requests=len(trace),
        solve_s=time.perf_counter() - started,
        relaxed_gpu_hours=lin.replica_s * scale,
        savings_gpu_hours=np.sort(_savings(r, sim, lin, T)[r.feasible])[::-1] * scale,
        cheapest_work_gpu_hours=np.sort((r.prefill_work_s + r.decode_work_s)[r.feasible]) * scale,
    )


def _savings(r: _Requests, sim: SimSettings, sol: _Solution, steps: int) -> np.ndarray:
    """g_i >= 0: a subgradient of the relaxed optimum in y_i at y = 1 (what leaving request i out of its
    window can save at most, to first order); 0 for infeasible requests."""
    dt, T = sim.dt_s, steps
    m = sol.marginals
    f = np.flatnonzero(r.feasible)

    def suffix(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.cumsum(v[::-1])[::-1]
        return out

    def step(times: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.clip((times // dt).astype(np.int64), 0, T - 1)
        return out

    # REL_k and DUE_k are sums over requests released / due by step k, so d/dy_i sums the marginals of
    # every k at or after the request's step, times its work.
    rel_p = suffix(m["rel_p"] + m["prev_rel_p"])
    due_p = suffix(m["due_p"] + m["due_p_row"])
    rel_d = suffix(m["rel_d"])
    due_d = suffix(m["due_d"])
    wp, wd = r.prefill_work_s[f], r.decode_work_s[f]
    g = wp * (rel_p[step(r.arrival_s[f])] + due_p[step(r.deadline_s[f])])
    g += wd * (rel_d[step(r.arrival_s[f])] + due_d[step(r.decode_due_s[f])])
    # The floor: a subgradient of floor_k in y is the gradient of its active piece (cov / max_num_seqs,
    # kv cov / kv_cache_tokens, or cov of the one request covering most of the step).
    ci, ck, cv = _coverage(r.busy_from_s, r.busy_to_s, dt, T, r.feasible)
    p = sim.profile
    seqs = np.bincount(ck, weights=cv, minlength=T)[:T] / p.max_num_seqs
    kvs = np.bincount(ck, weights=cv * r.kv_tokens[ci], minlength=T)[:T] / p.kv_cache_tokens
    top = np.zeros(T)
    np.maximum.at(top, ck, cv)
    # One request per step for the single-request piece (the max of several is not their sum).
    order = np.lexsort((-cv, ck))
    first = order[np.r_[True, ck[order][1:] != ck[order][:-1]]] if len(order) else order
    is_top = np.zeros(len(cv), dtype=bool)
    is_top[first] = True
    active = np.argmax(np.vstack([seqs, kvs, top]), axis=0)
    coef = np.where(
        active[ck] == 0,
        cv / p.max_num_seqs,
        np.where(active[ck] == 1, cv * r.kv_tokens[ci] / p.kv_cache_tokens, np.where(is_top, cv, 0.0)),
    )
    by_request = np.zeros(len(r.arrival_s))
    np.add.at(by_request, ci, coef * m["floor"][ck])
    out = np.zeros(len(r.arrival_s))
    out[f] = g
    out += by_request
    return np.maximum(out, 0.0)


def _coverage(
    start_s: np.ndarray, end_s: np.ndarray, dt_s: float, steps: int, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(request, step, fraction of the step inside [start, end)) for every overlap of a masked request."""
    ids = np.flatnonzero(mask & (end_s > start_s))
    s = np.clip(start_s[ids], 0, steps * dt_s)
    e = np.clip(end_s[ids], 0, steps * dt_s)
    k_first = (s // dt_s).astype(np.int64)
    k_last = np.minimum(np.ceil(e / dt_s).astype(np.int64), steps) - 1
    counts = np.maximum(k_last - k_first + 1, 0)
    rid = np.repeat(np.arange(len(ids)), counts)
    offs = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    kk = k_first[rid] + offs
    lo = np.maximum(s[rid], kk * dt_s)
    hi = np.minimum(e[rid], (kk + 1) * dt_s)
    frac = np.clip(hi - lo, 0, None) / dt_s
    keep = frac > 0
    return ids[rid[keep]], kk[keep], frac[keep]
