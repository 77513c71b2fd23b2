"""Determinism, the oracle bound, and the comparison's shape."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.baselines import static_peak_replicas
from simulations.engine import Comparison, compare, opens_idle, simulate, warmup_trace
from simulations.oracle import oracle_bound
from simulations.policies import make_policy
from simulations.policy import POLICIES, SimSettings
from simulations.profile import profile_named
from simulations.trace import Trace


def test_same_seed_same_result_and_seed_matters(conv_short: Trace, sim70: SimSettings) -> None:
    a = simulate(conv_short, make_policy("kpa", sim70, conv_short), sim70)
    b = simulate(conv_short, make_policy("kpa", sim70, conv_short), sim70)
    assert a.summary() == b.summary()
    assert np.array_equal(a.ttft_s, b.ttft_s, equal_nan=True)
    other = SimSettings(profile=sim70.profile, tail_s=sim70.tail_s, seed=7)
    c = simulate(conv_short, make_policy("kpa", other, conv_short), other)
    assert c.cold_starts == 0 or not np.array_equal(a.ttft_s, c.ttft_s, equal_nan=True)


@pytest.fixture(scope="module")
def parallel(conv_short: Trace, sim70: SimSettings) -> Comparison:
    """``compare`` as the CLI runs it: two workers."""
    return compare(conv_short, sim70, POLICIES, workers=2)


def test_comparison_reports_each_policy_against_the_bound_at_its_attainment(
    conv_short: Trace, parallel: Comparison
) -> None:
    c = parallel
    s = c.summary()
    assert set(s["policies"]) == set(POLICIES)
    assert s["requests"] == len(conv_short)
    assert s["oracle_gpu_hours"] == round(c.oracle.gpu_hours, 4) > 0
    for name, row in s["policies"].items():
        r = c.runs[name]
        assert row["bound_gpu_hours"] == round(c.oracle.at_met(r.met()), 4)
        assert row["gpu_hours"] >= row["bound_gpu_hours"], name
        assert r.met() == round(row["slo_attainment"] * len(conv_short))


def test_compare_in_parallel_equals_sequential(
    conv_short: Trace, sim70: SimSettings, parallel: Comparison
) -> None:
    """The runs share the workers (the longest first) and hindsight weighs the static fleet afterwards: the
    same runs, in the policies' order, as one process makes them."""
    one = compare(conv_short, sim70, POLICIES, workers=1)
    two = parallel
    assert list(two.runs) == list(POLICIES)
    for name in POLICIES:
        a, b = one.runs[name], two.runs[name]
        assert a.summary() == b.summary(), name
        assert a.settings == b.settings, name
        assert np.array_equal(a.ttft_s, b.ttft_s, equal_nan=True), name
        assert [t for t, _ in a.decisions] == [t for t, _ in b.decisions], name
    assert two.runs["hindsight"].settings["schedule"] in ("lp", "static")


def test_oracle_work_of_a_single_request(sim70: SimSettings) -> None:
    one = Trace("one", np.zeros(1), np.array([1000]), np.array([101]))
    b = oracle_bound(one, sim70)
    # Work: 1000 x 70 us + 100 x (0.28 ms + 14 ms / 128) = 70 ms + 38.9 ms = 108.9 ms of one replica.
    work_s = float(b.cheapest_work_gpu_hours[0]) * 3600 / sim70.profile.gpus_per_replica
    assert work_s == pytest.approx(0.1089, abs=5e-5)
    two = Trace("two", np.zeros(2), np.array([1000, 1000]), np.array([101, 101]))
    assert oracle_bound(two, sim70).cheapest_work_gpu_hours.sum() == pytest.approx(
        2 * b.cheapest_work_gpu_hours[0]
    )


def test_static_peak_sizes_for_the_busiest_minute(conv_short: Trace, sim70: SimSettings) -> None:
    n = static_peak_replicas(conv_short, sim70.profile)
    assert 1 <= n <= 10
    pol = make_policy("static-peak", sim70, conv_short)
    assert pol.initial_replicas == n


@pytest.mark.parametrize(
    ("arrivals", "idle"),
    [
        ([0.0, 5.0, 30.0], False),
        ([0.0, 61.0, 62.0], True),  # the lone first request, then nothing for a minute
        ([0.0, 59.9], False),
        ([0.0], True),
    ],
)
def test_opens_idle(arrivals: list[float], idle: bool) -> None:
    n = len(arrivals)
    assert opens_idle(Trace("t", np.asarray(arrivals), np.full(n, 10), np.full(n, 10))) is idle


def test_warm_start_gives_every_policy_the_same_opening_load(conv_short: Trace) -> None:
    sim = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=60.0, warmup_s=300.0)
    trace = conv_short.slice(0, 240)
    warm = warmup_trace(trace, sim)
    assert warm is not None
    # The first 300 s (here the whole 240 s slice) replayed before t = 0.
    assert np.array_equal(warm.arrival_s, trace.arrival_s - 241.0)
    fixed = {"static-peak": {"replicas": "3"}}
    runs = {p: simulate(trace, make_policy(p, sim, trace, fixed.get(p)), sim) for p in POLICIES}
    for name, r in runs.items():
        assert np.array_equal(r.warmup_arrivals_s, warm.arrival_s), name
        assert len(r.ttft_s) == len(trace), name  # only the trace's own requests are scored
        # The autoscalers meet t = 0 where that load put them: above their 1-replica start.
        if name != "static-peak":
            assert r.opening_replicas > 1, name
    assert runs["static-peak"].opening_replicas == 3
    # Cold starts and GPU time count from t = 0: 3 always-on replicas x 4 GPUs x (240 s + 60 s of tail).
    assert runs["static-peak"].cold_starts == 0
    assert runs["static-peak"].gpu_seconds == pytest.approx(3 * 4 * 300.0)


def test_no_warm_start_for_a_trace_that_opens_idle(sim70: SimSettings) -> None:
    trace = Trace("idle", np.array([0.0, 90.0, 91.0, 92.0]), np.full(4, 100), np.full(4, 10))
    assert warmup_trace(trace, sim70) is None
    r = simulate(trace, make_policy("scaler", sim70, trace), sim70)
    assert len(r.warmup_arrivals_s) == 0 and r.opening_replicas == 1


def test_length_aware_slo(sim70: SimSettings) -> None:
    sim = SimSettings(profile=sim70.profile, ttft_slo_s=1.0, ttft_slo_per_1k_prompt_s=0.5)
    # SimSettings.ttft_deadline_s: 1 s + 0.5 s per 1k prompt tokens.
    assert sim.ttft_deadline_s(np.array([0, 1000, 4000])) == pytest.approx([1.0, 1.5, 3.0])
    trace = Trace("t", np.array([0.0, 1.0]), np.array([1000, 4000]), np.array([5, 5]))
    r = simulate(trace, make_policy("static-peak", sim, trace, {"replicas": "1"}), sim)
    r.ttft_s[:] = [1.4, 2.9]  # both miss a flat 1 s SLO, both meet their own deadline
    assert r.met_slo().tolist() == [True, True]
    assert r.summary()["slo_attainment"] == 1.0
    flat = SimSettings(profile=sim70.profile, ttft_slo_s=1.0)
    r2 = simulate(trace, make_policy("static-peak", flat, trace, {"replicas": "1"}), flat)
    r2.ttft_s[:] = [1.4, 0.9]
    assert r2.met_slo().tolist() == [False, True]


def test_summary_reports_tpot_and_e2e_p99(conv_short: Trace, sim70: SimSettings) -> None:
    trace = conv_short.slice(0, 120)
    r = simulate(trace, make_policy("static-peak", sim70, trace, {"replicas": "2"}), sim70)
    s = r.summary()
    multi = trace.output_tokens > 1
    tpot = (r.e2e_s - r.ttft_s)[multi] / (trace.output_tokens[multi] - 1)
    assert s["tpot_p99_s"] == pytest.approx(np.quantile(tpot, 0.99), abs=1e-4)
    assert s["e2e_p99_s"] == pytest.approx(np.quantile(r.e2e_s, 0.99), abs=1e-4)
    # The 70B profile decodes at 14 ms + 0.28 ms per sequence: a TPOT p99 in tens of milliseconds.
    assert 0.014 < s["tpot_p99_s"] < 0.2
