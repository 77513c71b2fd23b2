"""The time loop: one trace, one policy, fixed steps of ``dt_s``; and the comparison of all policies.

Per step, in order: Prometheus scrapes the targets due (each every ``scrape_s`` at its own offset), the
policy's control loops act on what they can see, then the fleet serves the step. Deterministic for a seed
(cold-start jitter is the only randomness).

Warm start: a trace that opens under load is preceded by its own first ``warmup_s`` replayed once, at
negative times, unscored, so every autoscaler meets the scored run in the state that load put it in (its
replicas, their Prometheus history, the requests still in flight), as ``static-peak`` meets it at its
size. A trace that opens idle (``opens_idle``) starts cold, as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulations.baselines import HindsightPolicy, StaticPolicy, static_peak_replicas
from simulations.controlplane import ScrapeStore
from simulations.fleet import Fleet, FleetConfig
from simulations.oracle import OracleBound, oracle_bound
from simulations.policies import checked_settings, make_policy
from simulations.policy import POLICIES, Policy, ScalerPolicy, SimSettings
from simulations.trace import Trace

Progress = Callable[[float, str], None]


@dataclass
class RunResult:
    policy: str
    trace: str
    settings: dict[str, str]
    sim: SimSettings
    ttft_s: np.ndarray
    e2e_s: np.ndarray
    dropped: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    gpu_seconds: float
    cold_starts: int
    times_s: np.ndarray  # one sample per second
    replicas: np.ndarray  # Deployment replicas (loading + Ready)
    ready: np.ndarray
    holding: np.ndarray  # replicas holding GPUs (incl. draining): integrates to the GPU time
    in_flight: np.ndarray
    gateway: np.ndarray
    arrivals_per_s: np.ndarray
    store: ScrapeStore
    decisions: list[tuple[float, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)
    stopped_early: bool = False
    warmup_arrivals_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # replayed before t = 0
    opening_replicas: int = 0  # Deployment replicas when the scored run began

    @property
    def tpot_s(self) -> np.ndarray:
        """Per served request of more than one output token: (e2e - TTFT) / (output tokens - 1)."""
        served = (self.output_tokens > 1) & ~self.dropped
        out: np.ndarray = (self.e2e_s - self.ttft_s)[served] / (self.output_tokens[served] - 1)
        return out

    def met_slo(self) -> np.ndarray:
        """Which requests met their TTFT deadline (``SimSettings.ttft_deadline_s``); dropped ones did not."""
        deadline = self.sim.ttft_deadline_s(self.input_tokens)
        met: np.ndarray = ~self.dropped & (np.nan_to_num(self.ttft_s, nan=math.inf) <= deadline)
        return met

    def met(self) -> int:
        """Requests served whose TTFT met their deadline (``met_slo``)."""
        return int(np.count_nonzero(self.met_slo()))

    def summary(self) -> dict[str, Any]:
        ok = ~self.dropped
        ttft = self.ttft_s[ok]
        e2e = self.e2e_s[ok]
        n = len(self.ttft_s)
        met = self.met()

        def q(x: np.ndarray, p: float) -> float | None:
            return round(float(np.quantile(x, p)), 4) if len(x) else None

        return {
            "slo_attainment": round(met / n, 5) if n else None,
            "ttft_p50_s": q(ttft, 0.5),
            "ttft_p99_s": q(ttft, 0.99),
            "e2e_p99_s": q(e2e, 0.99),
            "tpot_p99_s": q(self.tpot_s, 0.99),
            "gpu_hours": round(self.gpu_seconds / 3600.0, 4),
            "cold_starts": self.cold_starts,
            "max_replicas": int(self.replicas.max()) if len(self.replicas) else 0,
            "dropped": int(np.count_nonzero(self.dropped)),
        }


def fleet_config(sim: SimSettings) -> FleetConfig:
    return FleetConfig(
        profile=sim.profile,
        cold_start_s=sim.cold_start_s,
        cold_start_jitter=sim.cold_start_jitter,
        gateway_timeout_s=sim.gateway_timeout_s,
        max_replicas=sim.max_replicas,
        seed=sim.seed,
    )


OPEN_IDLE_WINDOW_S = 60.0


def opens_idle(trace: Trace, window_s: float = OPEN_IDLE_WINDOW_S) -> bool:
    """A trace opens idle when its first minute holds at most one request (the one at t = 0 every trace
    starts with): then an autoscaler that had been running would be where a fresh one is, and there is no
    load to warm up on. A minute is the rate window: every rate signal would read (almost) nothing."""
    return int(np.searchsorted(trace.arrival_s, window_s, side="left")) <= 1


def warmup_trace(trace: Trace, sim: SimSettings) -> Trace | None:
    """The trace's first ``sim.warmup_s`` moved to before t = 0 (what ran just before the scored run), or
    None when warm start is off or the trace opens idle."""
    if sim.warmup_s <= 0 or opens_idle(trace):
        return None
    keep = trace.arrival_s < sim.warmup_s
    span = min(sim.warmup_s, math.ceil(trace.span_s) + 1.0)
    return Trace(
        f"{trace.name}[warm-up]",
        trace.arrival_s[keep] - span,
        trace.input_tokens[keep],
        trace.output_tokens[keep],
    )


def simulate(
    trace: Trace,
    policy: Policy,
    sim: SimSettings,
    progress: Progress | None = None,
    keep_scrapes: bool = False,
    stop_after_misses: int | None = None,
) -> RunResult:
    """Run ``policy`` over ``trace`` until the last arrival plus ``tail_s``, after the warm-up (see the module
    docstring). Only the trace's own requests are scored, and GPU time and cold starts count from t = 0.

    ``stop_after_misses``: end early (``RunResult.stopped_early``) once more requests than this have
    certainly missed the SLO (no first token by their deadline); used to reject sizes while searching.
    """
    started = time.perf_counter()
    warm = warmup_trace(trace, sim)
    n_warm = len(warm) if warm is not None else 0
    start_s = -min(sim.warmup_s, math.ceil(trace.span_s) + 1.0) if warm is not None else 0.0
    played = trace if warm is None else _concat(warm, trace)
    fleet = Fleet(played, fleet_config(sim), initial_replicas=policy.initial_replicas, start_s=start_s)
    store = ScrapeStore(interval_s=sim.scrape_s, keep_all=keep_scrapes, dt_s=sim.dt_s, seed=sim.seed)
    policy.attach(fleet, store)
    dt = sim.dt_s
    horizon_s = math.ceil(trace.span_s) + sim.tail_s
    first = round(start_s / dt)
    steps = round(horizon_s / dt)
    per_s = max(1, round(1.0 / dt))
    n_rec = (steps - 1) // per_s + 1
    rec = np.zeros((5, n_rec))
    report_every = max(1, (steps - first) // 200)
    check_every = max(1, round(30.0 / dt))
    deadline_s = sim.ttft_deadline_s(trace.input_tokens)
    deadline_at = trace.arrival_s + deadline_s
    gpu_at_0, cold_at_0, opening = fleet.gpu_seconds, fleet.cold_starts, fleet.replicas
    stopped = False
    try:
        for k in range(first, steps):
            t = k * dt
            if k == 0:
                gpu_at_0, cold_at_0, opening = fleet.gpu_seconds, fleet.cold_starts, fleet.replicas
            store.collect(fleet, t)
            policy.tick(k, t)
            fleet.step(t, dt)
            if k >= 0 and k % per_s == 0:
                i = k // per_s
                rec[:, i] = (
                    fleet.replicas,
                    fleet.ready,
                    fleet.holding,
                    fleet.in_flight(),
                    len(fleet.gateway),
                )
            if progress is not None and (k - first) % report_every == 0:
                progress(
                    (k - first) / (steps - first), f"{policy.name} t={t:5.0f}s replicas={fleet.replicas}"
                )
            if stop_after_misses is not None and k > 0 and k % check_every == 0:
                due = deadline_at <= t
                met = fleet.ttft[n_warm:][due] <= deadline_s[due]
                missed = int(np.count_nonzero(due)) - int(np.count_nonzero(met))
                if missed > stop_after_misses:
                    stopped = True
                    break
    finally:
        policy.close()
    fleet.finish()
    if progress is not None:
        progress(1.0, f"{policy.name} done")
    times = np.arange(n_rec, dtype=np.float64)
    arrivals = np.bincount(trace.arrival_s.astype(np.int64), minlength=n_rec)[:n_rec].astype(np.float64)
    scored = slice(n_warm, None)
    return RunResult(
        policy=policy.name,
        trace=trace.name,
        settings=dict(policy.settings),
        sim=sim,
        ttft_s=fleet.ttft[scored],
        e2e_s=fleet.e2e[scored],
        dropped=fleet.dropped[scored],
        input_tokens=trace.input_tokens,
        output_tokens=trace.output_tokens,
        gpu_seconds=fleet.gpu_seconds - gpu_at_0,
        cold_starts=fleet.cold_starts - cold_at_0,
        times_s=times,
        replicas=rec[0],
        ready=rec[1],
        holding=rec[2],
        in_flight=rec[3],
        gateway=rec[4],
        arrivals_per_s=arrivals,
        store=store,
        decisions=policy.decisions if isinstance(policy, ScalerPolicy) else [],
        wall_s=time.perf_counter() - started,
        metadata=policy.metadata if isinstance(policy, ScalerPolicy) else {},
        stopped_early=stopped,
        warmup_arrivals_s=warm.arrival_s if warm is not None else np.zeros(0),
        opening_replicas=opening,
    )


def _concat(a: Trace, b: Trace) -> Trace:
    return Trace(
        b.name,
        np.concatenate([a.arrival_s, b.arrival_s]),
        np.concatenate([a.input_tokens, b.input_tokens]),
        np.concatenate([a.output_tokens, b.output_tokens]),
    )


@dataclass
class Comparison:
    trace: Trace
    sim: SimSettings
    oracle: OracleBound
    runs: dict[str, RunResult]
    frontier: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        policies = {}
        for name, r in self.runs.items():
            # The bound at this policy's own attainment (``OracleBound.at_met``): its GPU-hours are above it.
            policies[name] = {**r.summary(), "bound_gpu_hours": round(self.oracle.at_met(r.met()), 4)}
        out = {
            "trace": self.trace.name,
            "requests": len(self.trace),
            "oracle_gpu_hours": round(self.oracle.gpu_hours, 4),
            "oracle_feasible_requests": self.oracle.feasible_requests,
            "profile": self.sim.profile.name,
            "cold_start_s": self.sim.cold_start_s,
            "ttft_slo_s": self.sim.ttft_slo_s,
            "ttft_slo_per_1k_prompt_s": self.sim.ttft_slo_per_1k_prompt_s,
            "warmup_s": self.sim.warmup_s if warmup_trace(self.trace, self.sim) is not None else 0.0,
            "seed": self.sim.seed,
            "policies": policies,
        }
        if self.frontier is not None:
            out["frontier"] = self.frontier
        return out


def compare(
    trace: Trace,
    sim: SimSettings,
    policies: tuple[str, ...] = POLICIES,
    settings: Mapping[str, Mapping[str, str]] | None = None,
    metadata: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    keep_scrapes: bool = False,
    frontier: bool = False,
    workers: int = 2,
) -> Comparison:
    """Every policy over the same trace and settings, plus the oracle bound; with ``frontier``, each
    baseline's sweep (``simulations.frontier``) against the scaler's attainment. The runs, and then the
    sweeps, share ``workers`` processes (1: all in this one)."""
    if frontier and "scaler" not in policies:
        raise ValueError("--frontier compares against the scaler: keep scaler in --policies")
    for name in policies:  # a bad setting fails at once, not after the LP solve
        checked_settings(name, (settings or {}).get(name))
    bound = oracle_bound(trace, sim)
    runs: dict[str, RunResult] = {}
    n = len(policies)
    jobs = [(name, (settings or {}).get(name), metadata if name == "scaler" else None) for name in policies]
    # Build every policy first, so a bad setting fails before minutes of simulation.
    built = [make_policy(name, sim, trace, given, meta, bound=bound) for name, given, meta in jobs]
    if workers <= 1 or n <= 1:
        for i, (name, setting, meta) in enumerate(jobs):

            def sub(frac: float, msg: str, i: int = i) -> None:
                if progress is not None:
                    progress((i + frac) / n, msg)

            runs[name] = _policy_run(trace, sim, bound, name, setting, meta, keep_scrapes, sub)
    else:
        # The runs are independent (hindsight weighs the static fleet's run afterwards, below), so they
        # share the workers, the longest first: the scaler's run is 38.5 s of a sequential compare's 90.5 s
        # on the conversation trace, each baseline's 5-9 s (the bench, commit eaa17c0).
        first = sorted(range(n), key=lambda i: policies[i] != "scaler")
        with ProcessPoolExecutor(max_workers=min(workers, n)) as pool:
            futures = {
                pool.submit(_policy_run, trace, sim, bound, *jobs[i], keep_scrapes): jobs[i][0] for i in first
            }
            for done, fut in enumerate(as_completed(futures)):
                runs[futures[fut]] = fut.result()
                if progress is not None:
                    progress((done + 1) / n, f"{futures[fut]} done")
    for name, pol in zip(policies, built, strict=True):
        if isinstance(pol, HindsightPolicy) and not pol.settings["scale"]:
            from simulations.frontier import hindsight_or_static

            # A planner with hindsight uses the static fleet where that is cheaper.
            runs[name] = hindsight_or_static(runs[name], runs.get("static-peak"), pol.settings)
    runs = {name: runs[name] for name in policies}
    fronts = None
    if frontier:
        from simulations.frontier import frontiers

        fronts = frontiers(trace, sim, bound, runs, settings or {}, workers=workers, progress=progress)
    return Comparison(trace, sim, bound, runs, fronts)


def _policy_run(
    trace: Trace,
    sim: SimSettings,
    bound: OracleBound,
    name: str,
    settings: Mapping[str, str] | None,
    metadata: Mapping[str, str] | None,
    keep_scrapes: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """One policy's run in ``compare``: a static fleet or a hindsight schedule without a size is sized first
    (hindsight's LP schedule only; ``compare`` then weighs it against the static fleet's run)."""
    pol = make_policy(name, sim, trace, settings, metadata, bound=bound)
    if isinstance(pol, StaticPolicy) and not pol.settings["replicas"]:
        return size_static_peak(trace, sim, pol.settings, progress, keep_scrapes)
    if isinstance(pol, HindsightPolicy) and not pol.settings["scale"]:
        from simulations.frontier import size_hindsight

        return size_hindsight(trace, sim, bound, pol.settings, progress)
    return simulate(trace, pol, sim, progress, keep_scrapes=keep_scrapes)


def size_static_peak(
    trace: Trace,
    sim: SimSettings,
    settings: Mapping[str, str],
    progress: Progress | None = None,
    keep_scrapes: bool = False,
) -> RunResult:
    """The static-peak run with the fewest always-on replicas whose SLO attainment reaches the target.

    Starts from the busiest-minute estimate, walks down while the target holds, or doubles up and then
    bisects when it does not; at most ~2 log2(max_replicas) runs, usually two or three. Attainment grows
    with replicas (more capacity never delays a request here), which is what makes bisection valid.
    """
    target = float(settings["target_attainment"])
    cache: dict[int, RunResult] = {}

    def run(n: int) -> RunResult:
        if n not in cache:
            pol = make_policy("static-peak", sim, trace, {**settings, "replicas": str(n)})
            pol.settings["replicas"] = ""  # report it as sized automatically
            cache[n] = simulate(trace, pol, sim, progress, keep_scrapes, stop_after_misses=allowed)
            cache[n].settings["replicas"] = str(n)
        return cache[n]

    def ok(n: int) -> bool:
        r = run(n)
        s = r.summary()["slo_attainment"]
        return not r.stopped_early and s is not None and s >= target

    allowed = int((1.0 - target) * len(trace))  # more misses than this and the target is out of reach

    def full(n: int) -> RunResult:
        if cache.get(n) is not None and not cache[n].stopped_early:
            return cache[n]
        pol = make_policy("static-peak", sim, trace, {**settings, "replicas": str(n)})
        r = simulate(trace, pol, sim, progress, keep_scrapes)
        r.settings.update({"replicas": str(n), "target_attainment": settings["target_attainment"]})
        return r

    top = sim.max_replicas
    n = min(static_peak_replicas(trace, sim.profile), top)
    if ok(n):
        while n > 1 and ok(n - 1):
            n -= 1
        return run(n)
    lo = n  # fails
    hi = n
    while hi < top:
        hi = min(top, hi * 2)
        if ok(hi):
            break
        lo = hi
    else:
        return full(top)  # even max_replicas misses the target: report the best there is
    if not ok(hi):
        return full(top)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return run(hi)
