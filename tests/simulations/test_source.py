"""MemorySource runs the production plans through the simulated Prometheus and the production reductions."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import scaler.sources.query as query
from scaler.core.config import LatencyMetric, parse_metadata
from scaler.core.signals import Measure
from scaler.core.target import Target
from scaler.sources.profile import (
    ALL_PROFILES,
    DCGM_GPU_UTIL_METRIC,
    TRITON,
    TRITON_TRTLLM,
    VLLM,
    BackendProfile,
    LatencyKind,
)
from scaler.sources.query import history_range, plan_history, plan_queries
from scaler.sources.spec import Op
from simulations import source
from simulations.engine import fleet_config, simulate
from simulations.exposition import Schema, dcgm_schema, triton_schema, trtllm_schema, vllm_schema
from simulations.fleet import Fleet
from simulations.policies import make_policy
from simulations.policy import ScalerPolicy, SimSettings
from simulations.profile import profile_named
from simulations.trace import Trace
from simulations.tsdb import ScrapeStore

SIMULATIONS = Path(source.__file__).parent


def test_the_reductions_are_the_production_ones() -> None:
    assert source.REDUCE_SIGNALS is query.reduce_signals
    assert source.REDUCE_HISTORY is query.reduce_history
    # No second copy of the signal arithmetic anywhere in the simulator.
    copies = {"histogram_quantile", "reduce_signals", "reduce_history", "_latency", "_scrape_signals"}
    for path in SIMULATIONS.glob("*.py"):
        defined = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        assert not defined & copies, path.name


def _scaler_run(trace: Trace, sim: SimSettings) -> tuple[ScalerPolicy, object]:
    pol = make_policy("scaler", sim, trace)
    assert isinstance(pol, ScalerPolicy)
    return pol, simulate(trace, pol, sim)


def test_every_decision_comes_from_reduce_signals_on_the_evaluated_queries(conv_short: Trace) -> None:
    sim = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=30.0, warmup_s=0.0)
    trace = conv_short.slice(0, 300)
    pol = make_policy("scaler", sim, trace)
    assert isinstance(pol, ScalerPolicy)
    fleet = Fleet(trace, fleet_config(sim), initial_replicas=pol.initial_replicas)
    store = ScrapeStore(dt_s=sim.dt_s)
    pol.attach(fleet, store)
    src = pol.source
    assert src is not None
    compared = 0
    for k in range(int(300 / sim.dt_s)):
        t = k * sim.dt_s
        store.collect(fleet, t)
        pol.tick(k, t)
        # Right after a refresh (every 2 s) that no KEDA poll or HPA sync (k % 60 == 0) followed: the
        # production reduction of the evaluated queries, with the pods as the Kubernetes reader counts
        # them, is exactly what decide() saw.
        if k % 120 == 8 and pol.decision is not None:
            states = src.pod_states(pol.target, t)
            want = query.reduce_signals(pol.target, src.instant_results(pol.target, t), states)
            got = {v.signal: v.value for v in pol.decision.signals}
            assert got == {name: want.value_of(name) for name in got}, t
            compared += 1
        fleet.step(t, sim.dt_s)
    assert compared >= 9
    # One reduce_signals per refresh (every 2 s) and one reduce_history per history step (15 s).
    refreshes = len(pol.decisions)
    assert refreshes + refreshes * 2 // 15 - 2 <= src.reductions <= refreshes + refreshes * 2 // 15 + 2


def test_history_is_the_production_hour_at_15s_aligned(conv_short: Trace) -> None:
    sim = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=30.0, warmup_s=0.0)
    pol, _ = _scaler_run(conv_short.slice(0, 300), sim)
    assert pol.source is not None
    now = 307.0
    start, end = history_range(now, 3600.0, 15.0)
    assert (start, end) == (-3300.0, 300.0)
    obs = pol.source.observe(pol.target, now)
    queue = obs.state.history[Measure.QUEUE]
    assert queue.times_s[-1] == 300.0 and all(t % 15.0 == 0.0 for t in queue.times_s)
    assert obs.state.history[Measure.REPLICAS].values[-1] >= 1


def _targets() -> list[Target]:
    """Targets covering every query kind of every backend profile: both latency metrics, GPU utilisation."""
    out = []
    for backend in ("vllm", "triton"):
        for metric in LatencyMetric:
            meta = {
                "backend": backend,
                "deployment": "llm",
                "targetQueuePerReplica": "4",
                "targetGpuUtilization": "80",
                "latencySloSeconds": "1",
                "latencyMetric": metric.value,
            }
            out.append(Target("sim", f"llm-{backend}-{metric.value}", parse_metadata(meta)))
    return out


# (simulated profile, the backend profiles whose queries its pods answer): a Triton + TensorRT-LLM pod also
# exports Triton's own families, so the generic shape's queries are answered too.
ANSWERED = [
    ("llama70b-h100x4", {"vllm"}),
    ("triton-encoder-h100", {"triton"}),
    ("triton-trtllm-llama70b-fp8-h100x4", {"triton", "triton-trtllm"}),
]


def _key(kind: str) -> str | None:
    """The backend profile a query kind belongs to (``history:triton-trtllm:queue``), None for the
    shared ones (up, dcgm, replicas)."""
    parts = kind.split(":")
    key = parts[1] if parts[0] == "history" else parts[0]
    return key if key in {p.key for p in ALL_PROFILES} else None


@pytest.mark.parametrize(("profile", "keys"), ANSWERED)
def test_the_evaluator_answers_every_planned_query(profile: str, keys: set[str], conv_short: Trace) -> None:
    sim = SimSettings(profile=profile_named(profile), tail_s=30.0, warmup_s=0.0)
    trace = conv_short.slice(0, 180)
    run = simulate(trace, make_policy("static-peak", sim, trace, {"replicas": "2"}), sim)
    store: ScrapeStore = run.store
    plans = plan_queries(_targets(), "1m").queries + plan_history(_targets(), "1m").queries
    assert {q.spec.op for q in plans if q.spec is not None} >= {Op.MAX, Op.COUNT, Op.SUM, Op.SELECT}
    answered = set()
    for q in plans:
        assert q.spec is not None, f"{q.kind}: a planned query without a QuerySpec cannot be simulated"
        if q.kind.startswith("history:"):
            result = store.query_range(q.spec, 60.0, 180.0, 15.0)
        else:
            result = store.query(q.spec, 180.0)
        if result:
            answered.add(q.kind)
    mine = {q.kind for q in plans if _key(q.kind) in keys or _key(q.kind) is None}
    # Every query of the simulated backend has data, except Triton's request summary, which Triton only
    # exports with --metrics-config summary_latencies=true (off by default): the profile falls back to the
    # mean from the always-on counters, which is answered.
    expected_missing = {f"{k}:latency:e2e:0" for k in keys if k.startswith("triton")}
    assert mine - answered == expected_missing


# The simulated pods of each backend profile (Triton's vLLM backend is not simulated).
SCHEMAS = [
    (VLLM, vllm_schema("m", 8192)),
    (TRITON, triton_schema("m")),
    (TRITON_TRTLLM, trtllm_schema("m")),
]


@pytest.mark.parametrize(("prof", "schema"), SCHEMAS, ids=lambda v: getattr(v, "key", ""))
def test_every_metric_a_backend_profile_names_is_exported(prof: BackendProfile, schema: Schema) -> None:
    # Adding a signal to a profile needs only that the simulated pods export the metric it reads.
    names = {prof.presence_metric, *prof.queue_metrics, *prof.throughput_counters}
    names |= {m for m in (prof.running_metric, prof.waiting_metric, prof.requests_counter) if m is not None}
    gauges = (prof.request_types, prof.kv_blocks, prof.iteration_counter, prof.batch_tokens)
    names |= {g.metric for g in gauges if g is not None}
    if prof.step_histogram is not None:
        names |= {f"{prof.step_histogram}_sum", f"{prof.step_histogram}_count"}
    for sources in prof.latency.values():
        for src in sources:
            if src.kind == LatencyKind.SUMMARY:
                continue  # off by default in Triton (see above)
            names.add(src.metric)
            if src.count_metric:
                names.add(src.count_metric)
    assert names <= set(schema.by_name), names - set(schema.by_name)
    assert DCGM_GPU_UTIL_METRIC in dcgm_schema(4).by_name


def test_pod_states_are_what_the_kubernetes_api_shows(conv_short: Trace) -> None:
    sim = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=30.0, warmup_s=0.0)
    pol, _ = _scaler_run(conv_short.slice(0, 300), sim)
    assert pol.source is not None and pol.fleet is not None
    f = pol.fleet
    f.scale_to(f.replicas + 2, 400.0)
    states = pol.source.pod_states(pol.target, 410.0)
    assert (states.total, states.ready) == (f.replicas, f.ready)
    assert states.warming_ages_s == (10.0, 10.0)  # oldest first
    assert all(d > 0 for d in states.cold_starts_s)  # the initial replica has none: it never loaded
    assert np.count_nonzero(f.status == 1) == 2


def test_the_tensorrt_llm_profile_runs_the_scalers_triton_path(conv_short: Trace) -> None:
    # compare --profile triton-trtllm-...: the scaler's SLO-only metadata with backend triton reads the
    # simulated pods as TensorRT-LLM (auto), its queue from the executor's requests, not the pending count.
    sim = SimSettings(profile=profile_named("triton-trtllm-llama70b-fp8-h100x4"), tail_s=30.0, warmup_s=0.0)
    pol, _ = _scaler_run(conv_short.slice(0, 300), sim)
    assert pol.source is not None and pol.fleet is not None
    assert pol.config.backend.value == "triton"
    obs = pol.source.observe(pol.target, 290.0)
    s = obs.signals
    assert s.source_notes["shape"].startswith("Triton TensorRT-LLM (in-flight batching): tritonBackend auto")
    assert s.running_requests is not None and s.waiting_requests is not None
    assert s.queue_requests == s.running_requests + s.waiting_requests
    assert s.kv_cache_fraction is not None and s.prompt_tokens_per_s and s.requests_per_s
    assert Measure.RUNNING in obs.state.history and Measure.PROMPT_TOKENS in obs.state.history
