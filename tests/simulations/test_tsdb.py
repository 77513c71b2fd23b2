"""The simulated Prometheus: targets scraped at their own offsets, and QuerySpecs evaluated as Prometheus
evaluates their PromQL (checked against a real Prometheus on the same samples)."""

from __future__ import annotations

import json
import math
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaler.core.config import parse_metadata
from scaler.core.target import Target
from scaler.sources.query import history_range, plan_history, plan_queries
from simulations.engine import simulate
from simulations.fleet import Fleet, FleetConfig
from simulations.openmetrics import BASE_EPOCH_S, write_openmetrics
from simulations.policies import make_policy
from simulations.policy import SimSettings
from simulations.profile import profile_named
from simulations.source import GATEWAY_SPEC
from simulations.trace import Trace
from simulations.tsdb import ScrapeStore, extrapolated_rate
from tests.harness.prometheus import PrometheusProcess, require_binary


def test_extrapolated_rate_worked_example() -> None:
    # The docstring's: window [40, 100], samples at 45..90 s of 0..45: 45 x (45 + 0 + 10) / 45 / 60.
    got = extrapolated_rate(np.array([0.0, 10.0]), np.array([45.0, 10.0]), 45.0, 90.0, 4, 100.0, 60.0)
    assert got[0] == pytest.approx(55 / 60)
    assert got[1] == 0.0  # no increase: no rate, whatever the extrapolation
    # A counter far from zero is extrapolated to the start as well: 45 x (45 + 5 + 10) / 45 / 60 = 1/s.
    far = extrapolated_rate(np.array([1000.0]), np.array([1045.0]), 45.0, 90.0, 4, 100.0, 60.0)
    assert far[0] == pytest.approx(1.0)
    # An edge further than 1.1 average intervals away is extrapolated by half an interval only:
    # samples at 60 and 75 s in [10, 100]: 15 x (15 + 7.5 + 7.5) / 15 / 90.
    sparse = extrapolated_rate(np.array([1000.0]), np.array([1015.0]), 60.0, 75.0, 2, 100.0, 90.0)
    assert sparse[0] == pytest.approx(30 / 90)


def _fleet(replicas: int, arrivals: np.ndarray) -> Fleet:
    n = len(arrivals)
    trace = Trace("t", arrivals, np.full(n, 300), np.full(n, 50))
    return Fleet(trace, FleetConfig(profile_named("llama70b-h100x4"), cold_start_jitter=0.0), replicas)


def _run(f: Fleet, store: ScrapeStore, start_s: float, end_s: float, dt_s: float = 0.25) -> None:
    """The engine's loop without a policy: scrape what is due, then serve the step."""
    for k in range(round(start_s / dt_s), round(end_s / dt_s)):
        store.collect(f, k * dt_s)
        f.step(k * dt_s, dt_s)


def test_each_target_is_scraped_every_interval_at_its_own_offset() -> None:
    f = _fleet(3, np.arange(0.0, 120.0, 0.5))
    store = ScrapeStore()
    _run(f, store, 0.0, 120.0)
    pods = [tg for tg in store.targets if tg.job == "pod"]
    assert len(pods) == 3 and {tg.job for tg in store.targets} == {"pod", "dcgm", "gateway"}
    offsets = {tg.times[0] for tg in pods}
    assert len(offsets) == 3 and all(0.0 <= o < 15.0 for o in offsets)  # spread over the interval
    for tg in store.targets:
        assert np.allclose(np.diff(tg.times), 15.0)
    # What an instant query returns at t is each pod's last scrape: 0-15 s old, differently per pod.
    view = store.view(100.0)
    assert len(view.pods) == 3
    ages = sorted(100.0 - max(x for x in tg.times if x <= 100.0) for tg in pods)
    assert all(0.0 <= a < 15.0 for a in ages) and len(set(ages)) == 3


def test_a_pod_that_goes_away_is_stale_at_once_but_stays_in_rate_windows() -> None:
    f = _fleet(2, np.arange(0.0, 200.0, 0.25))
    store = ScrapeStore()
    _run(f, store, 0.0, 100.0)
    f.scale_to(1, 100.0)  # one pod drains; it leaves once it holds nothing
    _run(f, store, 100.0, 250.0)
    gone = next(tg for tg in store.targets if tg.job == "pod" and tg.end_s < math.inf)
    spec = plan_queries([_target("sim")], "1m").queries
    up = next(q.spec for q in spec if q.kind == "up")
    tokens = next(q.spec for q in spec if q.kind == "vllm:throughput:0")
    assert up is not None and tokens is not None
    after = gone.end_s + 0.25
    assert len(store.query(up, gone.end_s - 0.25)) == 2
    assert len(store.query(up, after)) == 1  # the instant selector: stale at once
    assert len(store.query(tokens, after)) == 2  # its samples are still in the 1m window
    assert len(store.query(tokens, gone.times[-1] + 60.25)) == 1  # ... until they leave it


def _target(ns: str, backend: str = "vllm", **meta: str) -> Target:
    base = {"backend": backend, "deployment": "llm", "targetQueuePerReplica": "4"}
    return Target(ns, "llm", parse_metadata({**base, **meta}))


# -- the same samples in a real Prometheus -----------------------------------------------------------
class _BlocksPrometheus(PrometheusProcess):
    """A Prometheus that only serves blocks made by promtool (no scraping)."""

    def config(self) -> str:
        return "global:\n  scrape_interval: 15s\n"

    def get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        body = json.loads(self.open(f"{path}?{urllib.parse.urlencode(params)}", 10.0))
        assert body["status"] == "success", body
        return list(body["data"]["result"])


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, "sim" if k == "namespace" else v) for k, v in labels.items()))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("profile", "shape"),
    [
        ("llama70b-h100x4", {}),
        # TensorRT-LLM: its request types, KV blocks, token histograms, the iteration counter's rate and the
        # per-iteration batch gauges' avg_over_time
        ("triton-trtllm-llama70b-fp8-h100x4", {"backend": "triton", "tritonBackend": "tensorrtllm"}),
    ],
)
def test_evaluator_agrees_with_prometheus_on_the_same_samples(
    tmp_path: Path, profile: str, shape: dict[str, str]
) -> None:
    promtool = require_binary("promtool", "the agreement test backfills a TSDB with it (Debian: prometheus)")
    require_binary("prometheus", "the agreement test queries a real Prometheus (Debian: prometheus)")
    # Two always-on replicas (no pod comes or goes: OpenMetrics cannot carry staleness markers) serving ten
    # minutes of the conversation trace.
    trace = Trace("conv", *_conv_slice())
    sim = SimSettings(profile=profile_named(profile), tail_s=30.0, warmup_s=0.0)
    run = simulate(trace, make_policy("static-peak", sim, trace, {"replicas": "2"}), sim, keep_scrapes=True)
    om = tmp_path / "run.om"
    write_openmetrics({"static-peak": run}, om)
    prom = _BlocksPrometheus(tmp_path / "prom", "127.0.0.1:1", tmp_path / "none.json")
    (tmp_path / "prom").mkdir()
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp_path / "prom" / "data")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    prom.start()
    try:
        meta = {"latencySloSeconds": "1", "targetGpuUtilization": "80", **shape}
        ttft = {"latencySloSeconds": "1", "latencyMetric": "ttft", **shape}
        sim_targets = [_target("sim", **meta), _target("sim", **ttft)]
        real_targets = [_target("sim-static-peak", **meta), _target("sim-static-peak", **ttft)]
        sim_plan = [*plan_queries(sim_targets, "1m").queries, _gateway()]
        real_plan = [*plan_queries(real_targets, "1m").queries, _gateway(real=True)]
        compared = 0
        # One time whose 1m window opens exactly on a pod's sample, which Prometheus 2.x includes (3.x
        # would not); the others fall between samples.
        on_edge = next(tg for tg in run.store.targets if tg.job == "pod").times[20] + 60.0
        for at in (131.0, 250.25, on_edge, 598.0):
            for mine, theirs in zip(sim_plan, real_plan, strict=True):
                assert mine.spec is not None
                want = {
                    _key(r["metric"]): float(r["value"][1])
                    for r in prom.get("/api/v1/query", query=theirs.promql, time=BASE_EPOCH_S + at)
                }
                got = {_key(dict(s.labels)): s.value for s in run.store.query(mine.spec, at)}
                assert set(got) == set(want), (mine.kind, at)
                for k, v in want.items():
                    assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-9), (mine.kind, at, k)
                compared += len(want)
        for mine, theirs in zip(
            plan_history(sim_targets, "1m").queries, plan_history(real_targets, "1m").queries, strict=True
        ):
            assert mine.spec is not None
            start, end = history_range(600.0, 3600.0, 15.0)
            want_range = {
                _key(r["metric"]): [(float(t) - BASE_EPOCH_S, float(v)) for t, v in r["values"]]
                for r in prom.get(
                    "/api/v1/query_range",
                    query=theirs.promql,
                    start=BASE_EPOCH_S + start,
                    end=BASE_EPOCH_S + end,
                    step="15s",
                )
            }
            got_range = {
                _key(dict(s.labels)): list(zip(s.times_s, s.values, strict=True))
                for s in run.store.query_range(mine.spec, start, end, 15.0)
            }
            assert set(got_range) == set(want_range), mine.kind
            for k, points in want_range.items():
                assert [t for t, _ in got_range[k]] == [t for t, _ in points], mine.kind
                assert [v for _, v in got_range[k]] == pytest.approx([v for _, v in points], rel=1e-6), (
                    mine.kind
                )
                compared += len(points)
        assert compared > 500, compared
    finally:
        prom.stop()


def _conv_slice() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from simulations.trace import load_trace

    t = load_trace("azure-conv").slice(1500, 2100)
    return t.arrival_s, t.input_tokens, t.output_tokens


def _gateway(real: bool = False) -> Any:
    from scaler.sources.query import Query
    from scaler.sources.spec import Matcher, render

    if not real:
        return Query.of("gateway", GATEWAY_SPEC)
    spec = GATEWAY_SPEC.__class__(
        GATEWAY_SPEC.op, GATEWAY_SPEC.metrics, (Matcher("namespace", "=", "sim-static-peak"),)
    )
    return Query("gateway", render(spec), spec)


def test_a_loading_pod_is_scraped_and_fails_until_it_serves() -> None:
    # vLLM binds its port before it listens: Prometheus records up 0 for a loading pod, and nothing else.
    f = _fleet(1, np.arange(0.0, 200.0, 0.5))
    store = ScrapeStore()
    f.scale_to(2, 0.0)  # the second pod loads for 60 s (no jitter)
    _run(f, store, 0.0, 120.0)
    plan = {q.kind: q.spec for q in plan_queries([_target("sim")], "1m").queries}
    new = next(tg for tg in store.targets if tg.job == "pod" and tg.key == 1)
    assert 0 < new.failed < len(new.times)  # failed scrapes while loading, then served
    loading_t = new.times[new.failed - 1] + 0.25
    up = {s.labels["pod"]: s.value for s in store.query(plan["up"], loading_t)}  # type: ignore[arg-type]
    queue = store.query(plan["vllm:queue"], loading_t)  # type: ignore[arg-type]
    assert sorted(up.values()) == [0.0, 1.0] and len(queue) == 1  # the loading pod has up 0 and no queue
    served_t = new.times[new.failed] + 0.25
    assert sorted(s.value for s in store.query(plan["up"], served_t)) == [1.0, 1.0]  # type: ignore[arg-type]
    assert len(store.query(plan["vllm:queue"], served_t)) == 2  # type: ignore[arg-type]
    # Its first rate needs two successful scrapes: the failed ones are not samples.
    assert len(store.query(plan["vllm:throughput:0"], served_t)) == 1  # type: ignore[arg-type]
    assert len(store.query(plan["vllm:throughput:0"], new.times[new.failed + 1])) == 2  # type: ignore[arg-type]
