"""Determinism, the oracle bound, and the comparison's shape."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.baselines import static_peak_replicas
from simulations.engine import compare, simulate
from simulations.oracle import oracle_bound
from simulations.policies import make_policy
from simulations.policy import POLICIES, SimSettings
from simulations.trace import Trace


def test_same_seed_same_result_and_seed_matters(conv_short: Trace, sim70: SimSettings) -> None:
    a = simulate(conv_short, make_policy("kpa", sim70, conv_short), sim70)
    b = simulate(conv_short, make_policy("kpa", sim70, conv_short), sim70)
    assert a.summary() == b.summary()
    assert np.array_equal(a.ttft_s, b.ttft_s, equal_nan=True)
    other = SimSettings(profile=sim70.profile, tail_s=sim70.tail_s, seed=7)
    c = simulate(conv_short, make_policy("kpa", other, conv_short), other)
    assert c.cold_starts == 0 or not np.array_equal(a.ttft_s, c.ttft_s, equal_nan=True)


def test_comparison_reports_each_policy_against_the_bound_at_its_attainment(
    conv_short: Trace, sim70: SimSettings
) -> None:
    c = compare(conv_short, sim70, POLICIES)
    s = c.summary()
    assert set(s["policies"]) == set(POLICIES)
    assert s["requests"] == len(conv_short)
    assert s["oracle_gpu_hours"] == round(c.oracle.gpu_hours, 4) > 0
    for name, row in s["policies"].items():
        r = c.runs[name]
        assert row["bound_gpu_hours"] == round(c.oracle.at_met(r.met()), 4)
        assert row["gpu_hours"] >= row["bound_gpu_hours"], name
        assert r.met() == round(row["slo_attainment"] * len(conv_short))


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
