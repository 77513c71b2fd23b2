"""Benchmark: ``compare`` (every policy) on the bundled one-hour Azure conversation trace, and the scorecard.

``compare``'s budget is 60 s on 2 cores: ``run(out_dir)`` returns the median of ``REPEATS`` runs as the CLI
makes them (``--workers 2``: the policies' runs share two processes), side by side with the same number of
runs in one process (``workers=1``, the baseline), and the per-policy split of the last sequential one (in
parallel each run's wall time includes waiting for the other worker's CPU).
The scorecard (``python -m simulations scorecard``, the tuning set, every
baseline's frontier) has a budget of 10 minutes on 2 cores; it runs once (skipped with ``--quick``).
``python -m tests.bench.bench_simulator OUT`` runs both alone.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from simulations.engine import compare
from simulations.policy import POLICIES, SimSettings
from simulations.profile import DEFAULT_PROFILE, profile_named
from simulations.report import write_comparison
from simulations.trace import load_trace

REPEATS = 3
BUDGET_S = 60.0
SCORECARD_BUDGET_S = 600.0


def run(out_dir: Path, scorecard: bool = True) -> dict[str, Any]:
    trace = load_trace("azure-conv")
    sim = SimSettings(profile=profile_named(DEFAULT_PROFILE))
    walls: dict[int, list[float]] = {1: [], 2: []}
    per_policy: dict[str, float] = {}
    for _ in range(REPEATS):
        for workers in (1, 2):  # interleaved, so drifting load on a shared machine falls on both alike
            started = time.perf_counter()
            c = compare(trace, sim, POLICIES, workers=workers)
            walls[workers].append(time.perf_counter() - started)
            if workers == 1:
                per_policy = {name: round(r.wall_s, 2) for name, r in c.runs.items()}
    summary = write_comparison(c, out_dir / "simulator")
    median = statistics.median(walls[2])
    sequential = statistics.median(walls[1])
    result = {
        "name": "simulator.compare.azure-conv",
        "requests": len(trace),
        "simulated_s": trace.span_s,
        "profile": sim.profile.name,
        "policies": list(POLICIES),
        "repeats": REPEATS,
        "workers": 2,
        "wall_s": [round(w, 2) for w in walls[2]],
        "median_s": round(median, 2),
        "sequential_wall_s": [round(w, 2) for w in walls[1]],
        "sequential_median_s": round(sequential, 2),
        "speedup": round(sequential / median, 2),
        "budget_s": BUDGET_S,
        "within_budget": median <= BUDGET_S,
        "per_policy_s": per_policy,
        "cpus": os.cpu_count(),
        "slo_attainment": {k: v["slo_attainment"] for k, v in summary["policies"].items()},
        "oracle_solve_s": round(c.oracle.solve_s, 2),
    }
    if scorecard:
        from simulations.scorecard import run_scorecard

        sc = run_scorecard(out_dir / "scorecard", sim, "tuning", workers=2)
        result["scorecard"] = {
            "command": "python -m simulations scorecard --out DIR (set tuning, 2 workers)",
            "wall_s": sc["wall_s"],
            "budget_s": SCORECARD_BUDGET_S,
            "within_budget": sc["wall_s"] <= SCORECARD_BUDGET_S,
            "per_trace_s": {r["trace"]: r["wall_s"] for r in sc["rows"]},
        }
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/bench")
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(out), indent=2))
