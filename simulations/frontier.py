"""Frontiers: each baseline's main knob swept to find the fewest GPU-hours at which it matches the scaler's
attainment, and the sizing of ``hindsight``.

Attainment is monotone in every knob swept here (a lower threshold or target, or more replicas, never
serves fewer requests in time in this model, up to noise), so each sweep bisects toward the crossing
instead of walking a fixed grid: the two ends, then halving the bracket (geometrically for thresholds and
scales) for the remaining runs. Seven runs narrow a 64x threshold range to a step of 64^(1/32) = 1.14x, and
the replica count of ``static-peak`` to one replica. Every run is a full simulation; its summary is one
point ``[slo_attainment, gpu_hours, setting]`` with ``setting`` in the ``--set`` syntax, so any point can
be rerun. Sweeps run in at most ``workers`` processes (2 by default: the machine's two cores).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from simulations.engine import Progress, RunResult, simulate
from simulations.oracle import OracleBound
from simulations.policies import make_policy
from simulations.policy import SimSettings
from simulations.trace import Trace

RUNS_PER_KNOB = 7


@dataclass(frozen=True)
class Knob:
    """One swept setting of one baseline; ``fixed`` holds its other settings for this sweep."""

    policy: str
    key: str
    lo: float
    hi: float
    cheaper_up: bool  # a larger value uses fewer GPU-hours (and serves no more requests in time)
    scale: str  # "log", "linear" or "int"
    fixed: tuple[tuple[str, str], ...] = ()


def knobs(sim: SimSettings) -> tuple[Knob, ...]:
    """The sweeps: thresholds and targets over wide ranges around their defaults, kpa with and without a
    warm replica, the static fleet over every size, hindsight's scale on the LP schedule."""
    return (
        Knob("keda-queue", "threshold", 0.5, 64.0, True, "log"),
        Knob("keda-tuned", "threshold", 2.0, 128.0, True, "log"),
        Knob("hpa-gpu", "target_util_percent", 10.0, 100.0, True, "linear"),
        Knob("kpa", "target", 2.0, 128.0, True, "log", (("min_replicas", "0"),)),
        Knob("kpa", "target", 2.0, 128.0, True, "log", (("min_replicas", "1"),)),
        Knob("static-peak", "replicas", 1, float(sim.max_replicas), False, "int"),
        Knob("hindsight", "scale", 0.5, 4.0, False, "log"),
    )


@dataclass
class Point:
    slo_attainment: float
    gpu_hours: float
    met: int
    setting: str

    def row(self) -> list[Any]:
        return [self.slo_attainment, self.gpu_hours, self.setting]


@dataclass
class _Job:
    trace: Trace
    sim: SimSettings
    bound: OracleBound
    knob: Knob
    base: dict[str, str] = field(default_factory=dict)
    target_met: int = 0


def _fmt(knob: Knob, x: float) -> str:
    return str(int(x)) if knob.scale == "int" else f"{x:.4g}"


def _midpoint(knob: Knob, a: float, b: float) -> float | None:
    """The next value to try between a and b; None when the bracket is as narrow as it gets."""
    if knob.scale == "int":
        lo, hi = min(a, b), max(a, b)
        return None if hi - lo <= 1 else float((int(lo) + int(hi)) // 2)
    mid = math.sqrt(a * b) if knob.scale == "log" else (a + b) / 2
    return None if _fmt(knob, mid) in (_fmt(knob, a), _fmt(knob, b)) else mid


def bisect(
    knob: Knob, ok: Callable[[float], bool], runs: int = RUNS_PER_KNOB
) -> tuple[float | None, list[float]]:
    """The cheapest value of ``knob`` for which ``ok`` holds, found by bisection; and every value tried.

    The cheap end first (if it is good, nothing cheaper exists in range), then the dear end (if it is not,
    none is good), then halving the bracket between the last good and the last bad value.
    """
    cheap, dear = (knob.hi, knob.lo) if knob.cheaper_up else (knob.lo, knob.hi)
    tried = [cheap]
    if ok(cheap):
        return cheap, tried
    tried.append(dear)
    if not ok(dear):
        return None, tried
    good, bad = dear, cheap
    while len(tried) < runs:
        mid = _midpoint(knob, good, bad)
        if mid is None:
            break
        tried.append(mid)
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, tried


def _run(job: _Job, settings: Mapping[str, str], stop_after_misses: int | None = None) -> RunResult:
    pol = make_policy(job.knob.policy, job.sim, job.trace, settings, bound=job.bound)
    return simulate(job.trace, pol, job.sim, stop_after_misses=stop_after_misses)


def _sweep(job: _Job) -> list[Point]:
    points: list[Point] = []

    def ok(x: float) -> bool:
        setting = {**job.base, **dict(job.knob.fixed), job.knob.key: _fmt(job.knob, x)}
        r = _run(job, setting)
        s = r.summary()
        label = ",".join(
            f"{k}={v}" for k, v in sorted(setting.items()) if k in (job.knob.key, *dict(job.knob.fixed))
        )
        points.append(Point(s["slo_attainment"], s["gpu_hours"], r.met(), label))
        return r.met() >= job.target_met

    bisect(job.knob, ok)
    return points


def frontiers(
    trace: Trace,
    sim: SimSettings,
    bound: OracleBound,
    runs: Mapping[str, RunResult],
    settings: Mapping[str, Mapping[str, str]],
    workers: int = 2,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``frontier.<baseline>``: every swept point and the fewest GPU-hours among those whose attainment is
    at least the scaler's (null when no swept setting reaches it). hindsight's includes the static fleet's
    points: a planner with hindsight uses the static fleet where that is cheaper."""
    scaler = runs["scaler"]
    target_met = scaler.met()
    jobs = [
        _Job(trace, sim, bound, k, dict(settings.get(k.policy, {})), target_met)
        for k in knobs(sim)
        if k.policy in runs
    ]
    results: list[list[Point]] = []
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            results.append(_sweep(job))
            if progress is not None:
                progress((i + 1) / len(jobs), f"frontier {job.knob.policy}")
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_sweep, job) for job in jobs]
            for i, fut in enumerate(futures):
                results.append(fut.result())
                if progress is not None:
                    progress((i + 1) / len(jobs), f"frontier {jobs[i].knob.policy}")
    by_policy: dict[str, list[Point]] = {}
    for job, pts in zip(jobs, results, strict=True):
        by_policy.setdefault(job.knob.policy, []).extend(pts)
    out: dict[str, Any] = {}
    for name, pts in by_policy.items():
        pts = sorted(pts, key=lambda p: (p.gpu_hours, -p.slo_attainment))
        candidates = pts + (by_policy.get("static-peak", []) if name == "hindsight" else [])
        good = [p for p in candidates if p.met >= target_met]
        best = min(good, key=lambda p: p.gpu_hours) if good else None
        out[name] = {
            "gpu_hours_at_scaler_attainment": best.gpu_hours if best else None,
            "setting_at_scaler_attainment": best.setting if best else None,
            "points": [p.row() for p in pts],
        }
    return out


def size_hindsight(
    trace: Trace,
    sim: SimSettings,
    bound: OracleBound,
    settings: Mapping[str, str],
    progress: Progress | None = None,
) -> RunResult:
    """The hindsight run: the smallest scale of the LP schedule that reaches the target attainment (bisection
    as in the frontiers; runs that cannot reach it stop early). ``compare`` then weighs it against the static
    fleet's run (``hindsight_or_static``)."""
    target = float(settings["target_attainment"])
    allowed = int((1.0 - target) * len(trace))
    knob = next(k for k in knobs(sim) if k.policy == "hindsight")
    job = _Job(trace, sim, bound, knob)
    cache: dict[str, RunResult] = {}

    def ok(x: float) -> bool:
        key = _fmt(knob, x)
        r = _run(job, {**settings, "scale": key}, stop_after_misses=allowed)
        cache[key] = r
        s = r.summary()["slo_attainment"]
        return not r.stopped_early and s is not None and s >= target

    best, _ = bisect(knob, ok)
    key = _fmt(knob, best if best is not None else knob.hi)
    lp = cache.get(key)
    if lp is None or lp.stopped_early:
        lp = _run(job, {**settings, "scale": key})
    lp.settings.update({"scale": key, "schedule": "lp"})
    if progress is not None:
        progress(1.0, "hindsight sized")
    return lp


def hindsight_or_static(
    lp: RunResult, static_run: RunResult | None, settings: Mapping[str, str]
) -> RunResult:
    """The sized LP schedule's run, or the static fleet's when that reaches the target with fewer GPU-hours
    (or comes closer to it when neither reaches it): a planner with hindsight picks the cheaper plan
    (``settings["schedule"]`` says which)."""
    target = float(settings["target_attainment"])
    reached = lp.summary()["slo_attainment"] or 0.0
    if static_run is not None:
        st = static_run.summary()
        static_ok = (st["slo_attainment"] or 0.0) >= target
        if (static_ok and (reached < target or st["gpu_hours"] <= lp.summary()["gpu_hours"])) or (
            not static_ok and reached < target and (st["slo_attainment"] or 0.0) > reached
        ):
            return dataclasses.replace(
                static_run,
                policy="hindsight",
                settings={
                    **settings,
                    "schedule": "static",
                    "replicas": static_run.settings.get("replicas", ""),
                },
            )
    return lp
