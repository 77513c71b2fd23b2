"""Fleet and engine invariants: every request completes or is dropped, replicas stay within bounds, GPU time
is the integral of the replicas holding GPUs (loading and draining included)."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.engine import simulate
from simulations.exposition import vllm_schema
from simulations.fleet import DRAINING, LOADING, READY, Fleet, FleetConfig
from simulations.policies import make_policy
from simulations.policy import POLICIES, SimSettings
from simulations.profile import profile_named
from simulations.trace import Trace


def _trace(arrivals: list[float], inp: int = 200, out: int = 50) -> Trace:
    n = len(arrivals)
    return Trace("t", np.asarray(arrivals, float), np.full(n, inp), np.full(n, out))


def test_cold_start_replica_serves_only_once_ready_and_gpu_time_counts_loading() -> None:
    p = profile_named("llama8b-h100")
    f = Fleet(
        _trace([0.0, 1.0]), FleetConfig(p, cold_start_s=30.0, cold_start_jitter=0.0), initial_replicas=0
    )
    f.scale_to(1, 0.0)
    assert f.replicas == 1 and f.loading == 1 and f.ready == 0
    dt = 0.25
    for k in range(120):  # 0 .. 29.75 s
        f.step(k * dt, dt)
    t = 30.0
    assert f.ready == 0 and len(f.gateway) == 2  # requests wait at the gateway during the cold start
    f.step(t, dt)
    assert f.ready == 1 and len(f.gateway) == 0
    assert f.gpu_seconds == pytest.approx(30.25)
    assert f.cold_start_samples_s == [30.0]
    for _ in range(100):
        t += dt
        f.step(t, dt)
    assert np.isfinite(f.ttft).all() and np.isfinite(f.e2e).all()
    assert f.ttft.min() >= 29.0  # the first request waited the whole cold start


def test_scale_down_removes_loading_pods_first_then_drains_newest_ready() -> None:
    p = profile_named("llama8b-h100")
    f = Fleet(_trace([0.0]), FleetConfig(p, cold_start_s=10.0, cold_start_jitter=0.0), initial_replicas=2)
    f.scale_to(3, 5.0)
    assert (f.status == LOADING).sum() == 1
    f.scale_to(2, 6.0)
    assert (f.status == LOADING).sum() == 0 and f.replicas == 2
    f.step(6.0, 0.25)  # the request is routed to a Ready replica
    holder = int(f.rep[0])
    f.scale_to(0, 6.5)
    assert (f.status == DRAINING).sum() == 2 and f.replicas == 0
    f.step(6.5, 0.25)
    assert f.status[holder] == DRAINING  # still holds the request: drains, keeps its GPU
    assert (f.status == READY).sum() == 0


def test_gateway_drops_after_timeout_and_horizon_drops_unfinished() -> None:
    p = profile_named("llama8b-h100")
    f = Fleet(_trace([0.0, 0.1]), FleetConfig(p, gateway_timeout_s=5.0), initial_replicas=0)
    for k in range(30):
        f.step(k * 0.25, 0.25)
    assert f.dropped.all()


@pytest.mark.parametrize("policy", POLICIES)
def test_invariants_on_a_real_slice(conv_short: Trace, sim70: SimSettings, policy: str) -> None:
    sim = SimSettings(profile=sim70.profile, tail_s=120.0, max_replicas=12)
    r = simulate(conv_short, make_policy(policy, sim, conv_short), sim)
    done = np.isfinite(r.e2e_s)
    # Every request either completed (TTFT and e2e known, in order) or was counted as dropped.
    assert np.all(done | r.dropped)
    assert not np.any(done & r.dropped)
    assert np.all(r.ttft_s[done] <= r.e2e_s[done] + 1e-9) and np.all(r.ttft_s[done] >= 0)
    # Replicas within [min, max]; never below the policy's minimum once it acted.
    minimum = {"keda-queue": 1, "hpa-gpu": 1}.get(policy, 0)
    assert r.replicas.min() >= minimum and r.replicas.max() <= sim.max_replicas
    # GPU-hours = integral of the GPU-holding replicas (sampled each second here, exact per step inside).
    integral_s = float(r.holding.sum()) * sim.profile.gpus_per_replica
    assert r.gpu_seconds == pytest.approx(integral_s, rel=0.01)
    s = r.summary()
    assert 0.0 <= s["slo_attainment"] <= 1.0
    assert s["dropped"] == int(r.dropped.sum())


def test_triton_dynamic_batching_serves_items_in_batches() -> None:
    p = profile_named("triton-encoder-h100")
    n = 200
    trace = Trace("burst", np.linspace(0.0, 1.0, n), np.full(n, 512), np.full(n, 1))
    f = Fleet(trace, FleetConfig(p), initial_replicas=1)
    for k in range(40):
        f.step(k * 0.25, 0.25)
    assert np.isfinite(f.e2e).all()
    assert np.array_equal(f.ttft, f.e2e)  # one response per request: first token = completion
    # 200 items in batches of at most 64 at 4 ms + 0.5 ms per item: ~0.1 s of work, all done within 1.5 s.
    assert float(np.max(trace.arrival_s + f.e2e)) < 1.5
    assert f.gen_total.sum() == n


def test_average_concurrency_is_time_weighted_like_knatives_queue_proxy() -> None:
    p = profile_named("llama8b-h100")
    f = Fleet(_trace([0.2, 0.5], inp=100, out=2), FleetConfig(p), initial_replicas=1)
    f.e2e[:] = [0.5, np.nan]  # the first took 0.5 s; the second is still in the system at t = 1
    # Over [0, 1]: 0.5 s of the first + 0.5 s of the second = 1.0 request on average.
    assert f.average_concurrency(1.0) == pytest.approx(1.0)
    # Over [1, 2] only the unfinished one counts, fully.
    assert f.average_concurrency(2.0) == pytest.approx(1.0)
    f.dropped[1] = True  # dropped at the gateway timeout (300 s): counted until then, never NaN
    assert f.average_concurrency(2.0) == pytest.approx(1.0)
    assert f.average_concurrency(400.0) == pytest.approx(0.0)


def test_an_arrival_reaches_the_engine_at_its_own_time_not_the_next_step() -> None:
    # One request at 0.1 s on an idle Ready 8B replica: its TTFT is its prefill iteration alone,
    # 6.2 ms + 200 x 35 us = 13.2 ms, not that plus the 0.15 s to the next 0.25 s step boundary.
    p = profile_named("llama8b-h100")
    f = Fleet(_trace([0.1]), FleetConfig(p), initial_replicas=1)
    for k in range(8):
        f.step(k * 0.25, 0.25)
    assert f.ttft[0] == pytest.approx(p.base_s + 200 * p.prefill_token_s, abs=1e-9)
    # Two prompts arriving inside one step are served one after the other from their own arrival:
    # the second (at 0.2 s) waits for nothing, the first (at 0.05 s) finished long before.
    g = Fleet(_trace([0.05, 0.2]), FleetConfig(p), initial_replicas=1)
    for k in range(8):
        g.step(k * 0.25, 0.25)
    assert g.ttft == pytest.approx([0.0132, 0.0132], abs=1e-6)


def test_pods_export_consistent_vllm_metrics(conv_short: Trace) -> None:
    p = profile_named("llama70b-h100x4")
    trace = conv_short.slice(0, 120)
    f = Fleet(trace, FleetConfig(p), initial_replicas=2)
    for k in range(int(300 / 0.25)):  # everything finishes within 300 s
        f.step(k * 0.25, 0.25)
    assert np.isfinite(f.e2e).all()
    slots = np.flatnonzero(f.status == READY)
    rows = f.vllm_rows(slots)
    schema = vllm_schema(p.name, p.max_model_len)

    def col(name: str, **labels: str) -> np.ndarray:
        i = next(
            c
            for c in schema.by_name[name]
            if all(dict(schema.columns[c].labels).get(k) == v for k, v in labels.items())
        )
        return rows[:, i]

    n = len(trace)
    assert col("vllm:request_success_total", finished_reason="stop").sum() == n
    assert col("vllm:request_success_total", finished_reason="abort").sum() == 0
    per_request = (
        "time_to_first_token_seconds",
        "e2e_request_latency_seconds",
        "request_prefill_time_seconds",
        "request_time_per_output_token_seconds",
        "request_prompt_tokens",
        "request_generation_tokens",
    )
    for h in per_request:
        assert col(f"vllm:{h}_count").sum() == n, h
        assert col(f"vllm:{h}_bucket", le="+Inf").sum() == n, h
    assert col("vllm:request_prompt_tokens_sum").sum() == trace.input_tokens.sum()
    assert col("vllm:request_generation_tokens_sum").sum() == trace.output_tokens.sum()
    assert col("vllm:prompt_tokens_total").sum() == pytest.approx(trace.input_tokens.sum())
    assert col("vllm:generation_tokens_total").sum() == pytest.approx(trace.output_tokens.sum())
    # One inter-token sample per output token after the first (fluid counts, so approximately).
    itl = col("vllm:inter_token_latency_seconds_count").sum()
    assert itl == pytest.approx(trace.output_tokens.sum() - n, rel=1e-6)
    # Prefill (scheduled -> first token) is part of the TTFT, so its sum is at most the TTFT's.
    assert (
        col("vllm:request_prefill_time_seconds_sum").sum()
        <= col("vllm:time_to_first_token_seconds_sum").sum()
    )
    assert (col("vllm:num_requests_running") == 0).all() and (col("vllm:kv_cache_usage_perc") == 0).all()
    assert (rows[:, schema.by_name["up"][0]] == 1).all()
