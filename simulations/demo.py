"""``make demo``: the closed loop through the real gRPC server on a bundled real trace, then the scorecard."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from simulations.closedloop import GrpcScalerPolicy
from simulations.engine import Comparison, compare, simulate
from simulations.openmetrics import write_openmetrics
from simulations.policy import POLICIES, SimSettings, merged_settings, scaler_metadata
from simulations.profile import profile_named
from simulations.report import ProgressBar, summary_table, write_comparison
from simulations.trace import load_trace


def run_demo(trace_name: str, slice_spec: str, profile: str, out: Path) -> int:
    started = time.perf_counter()
    start_s, _, end_s = slice_spec.partition(":")
    trace = load_trace(trace_name).slice(float(start_s), float(end_s))
    sim = SimSettings(profile=profile_named(profile))
    print(
        f"trace {trace.name}: {len(trace)} requests over {trace.span_s / 60:.1f} min; profile {profile}, "
        f"cold start {sim.cold_start_s:g} s, TTFT SLO {sim.ttft_slo_s:g} s"
    )
    print("1/2 closed loop: real ScalerServer on 127.0.0.1, KEDA/HPA model calling it over gRPC")
    policy = GrpcScalerPolicy("scaler", merged_settings("scaler", {}), sim, metadata=scaler_metadata(sim))
    bar = ProgressBar("  scaler via gRPC")
    try:
        loop_run = simulate(trace, policy, sim, bar, keep_scrapes=True)
    finally:
        bar.close()
    calls = ", ".join(f"{k} {v}" for k, v in sorted(policy.rpc_calls.items()))
    print(
        f"  {loop_run.wall_s:.1f} s wall for {trace.span_s / 60:.0f} simulated min; RPCs: {calls}; "
        f"StreamIsActive pushes {policy.pushes}"
    )
    print("2/2 baselines (and the scaler in-process, to check the loop changes nothing)")
    bar = ProgressBar("  baselines")
    try:
        c = compare(trace, sim, POLICIES, progress=bar, keep_scrapes=True)
    finally:
        bar.close()
    same = loop_run.summary() == c.runs["scaler"].summary()
    runs = dict(c.runs)
    runs["scaler"] = loop_run
    result = Comparison(trace, sim, c.oracle, runs)
    summary = write_comparison(result, out)
    # hindsight is sized by replaying the LP schedule (frontier.size_hindsight), which keeps no scrapes.
    exported = {name: r for name, r in runs.items() if r.store.keep_all}
    write_openmetrics(exported, out / "run.om")
    sys.stdout.write("\n" + summary_table(summary))
    print(f"\nscaler over gRPC {'matches' if same else 'DIFFERS FROM'} the in-process scaler.")
    print(
        f"wrote {out}/summary.json, summary.md, replicas.png, latency.png, run.om ({', '.join(exported)}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0 if same else 1
