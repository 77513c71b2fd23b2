"""Determinism, the oracle bound, and the comparison's shape."""

from __future__ import annotations

import numpy as np

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


def test_oracle_is_below_every_policy_that_met_the_slo(conv_short: Trace, sim70: SimSettings) -> None:
    c = compare(conv_short, sim70, POLICIES)
    bound = c.oracle
    assert bound.gpu_hours > 0
    assert bound.busy_bound_s > 0 and bound.binned_bound_s > 0
    for name, r in c.runs.items():
        assert r.gpu_seconds / 3600 >= bound.gpu_hours, name
    s = c.summary()
    assert set(s["policies"]) == set(POLICIES)
    assert s["requests"] == len(conv_short)


def test_oracle_grows_with_load_and_is_exact_for_a_single_request(sim70: SimSettings) -> None:
    p = sim70.profile
    one = Trace("one", np.zeros(1), np.array([1000]), np.array([101]))
    b = oracle_bound(one, p, ttft_slo_s=1.0)
    # Work: 1000 x 70 us + 100 x (0.28 ms + 14 ms / 128) = 70 ms + 38.9 ms = 108.9 ms of one replica.
    assert b.busy_bound_s == np.float64(
        1000 * p.prefill_token_s + 100 * (p.per_seq_s + p.base_s / p.max_num_seqs)
    )
    two = Trace("two", np.zeros(2), np.array([1000, 1000]), np.array([101, 101]))
    assert oracle_bound(two, p, 1.0).busy_bound_s > b.busy_bound_s


def test_static_peak_sizes_for_the_busiest_minute(conv_short: Trace, sim70: SimSettings) -> None:
    n = static_peak_replicas(conv_short, sim70.profile)
    assert 1 <= n <= 10
    pol = make_policy("static-peak", sim70, conv_short)
    assert pol.initial_replicas == n
