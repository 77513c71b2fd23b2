"""Baselines as a platform team runs them: keda-tuned wakes from zero and sizes on requests in flight,
hpa-gpu ignores pods being deleted, hindsight issues each start a longest cold start ahead."""

from __future__ import annotations

import numpy as np

from simulations.baselines import HpaGpuPolicy, KedaTunedPolicy, hindsight_schedule
from simulations.controlplane import ScrapeStore
from simulations.engine import fleet_config, simulate
from simulations.fleet import DRAINING, Fleet
from simulations.oracle import OracleBound
from simulations.policies import make_policy
from simulations.policy import SimSettings, merged_settings
from simulations.profile import profile_named
from simulations.trace import GENERATORS, Trace

P70 = profile_named("llama70b-h100x4")


def test_keda_tuned_scales_to_zero_and_wakes_on_the_gateway() -> None:
    # 5 busy minutes at 1/s, then 15 idle, twice: KEDA releases the last replica 300 s (cooldownPeriod)
    # after in-flight and pending both read 0, and the gateway's pending requests wake it again.
    trace = GENERATORS["idle-gaps"](1.0, 1500.0, seed=1)  # type: ignore[operator]
    sim = SimSettings(profile=P70, tail_s=60.0)
    pol = make_policy("keda-tuned", sim, trace)
    assert isinstance(pol, KedaTunedPolicy)
    r = simulate(trace, pol, sim)
    assert pol.threshold == 22  # 70 % of the 70B profile's knee of 32
    second = int(np.searchsorted(r.times_s, trace.arrival_s[np.argmax(np.diff(trace.arrival_s)) + 1]))
    assert r.replicas[:second].min() == 0  # it went to zero in the gap
    assert r.replicas[second:].max() >= 1  # and woke up for the second busy period
    served_late = np.isfinite(
        r.ttft_s[trace.arrival_s >= trace.arrival_s[np.argmax(np.diff(trace.arrival_s)) + 1]]
    )
    assert served_late.mean() > 0.95


def test_keda_tuned_asks_for_in_flight_over_threshold() -> None:
    # 55 long requests at once on 2 replicas: all admitted (max_num_seqs 128), 28 + 27 running.
    trace = Trace("t", np.zeros(55), np.full(55, 100), np.full(55, 1000))
    sim = SimSettings(profile=P70)
    pol = make_policy("keda-tuned", sim, trace, {"threshold": "10"})
    fleet = Fleet(trace, fleet_config(sim), initial_replicas=2)
    store = ScrapeStore()
    pol.attach(fleet, store)
    fleet.step(0.0, 0.25)
    store.scrape_all(fleet, 0.25)  # 55 in flight over 2 pods at 10 each: ceil(5.5) = 6
    assert store.last.running.sum() == 55
    pol.tick(0, 0.25)
    # The HPA's default scale-up policy allows max(100 %, 4 pods) per 15 s: 2 -> 6.
    assert fleet.replicas == 6


def test_hpa_gpu_ignores_pods_being_deleted() -> None:
    trace = Trace("t", np.zeros(1), np.array([100]), np.array([10]))
    sim = SimSettings(profile=P70)
    fleet = Fleet(trace, fleet_config(sim), initial_replicas=4)
    fleet.status[2:4] = DRAINING  # two pods terminating, still busy draining
    fleet.busy[:4] = [0.4, 0.4, 1.0, 1.0]
    store = ScrapeStore()
    store.scrape_all(fleet, 0.0)
    pol = HpaGpuPolicy("hpa-gpu", merged_settings("hpa-gpu", {}), sim)
    pol.attach(fleet, store)
    pol.tick(0, 0.0)
    # The two live pods average 40 % against 80 %: ceil(0.5 x 2) = 1. Counting the terminating ones
    # (mean 70 %, ratio 0.875 over 4 pods) would have asked for 4.
    assert fleet.replicas == 1


def test_hindsight_starts_a_longest_cold_start_ahead_and_rounds_up() -> None:
    sim = SimSettings(profile=P70)  # 60 s +/-10 %: lead 66 s = 264 steps
    n = np.zeros(1000)
    n[500:520] = 1.2
    bound = OracleBound(
        gpu_hours=0.0,
        dt_s=0.25,
        replicas=n,
        starts=np.zeros(1000),
        initial_replicas=0.0,
        feasible_requests=0,
        requests=0,
        solve_s=0.0,
        relaxed_gpu_hours=0.0,
        savings_gpu_hours=np.zeros(0),
        cheapest_work_gpu_hours=np.zeros(0),
    )
    d = hindsight_schedule(bound, sim, 1.0)
    assert d[500] == 2 and d[519] == 2 and d[520] == 0  # ceil(1.2), released once no step needs it
    assert d[500 - 264] == 2 and d[500 - 265] == 0  # issued 66 s ahead
    assert hindsight_schedule(bound, sim, 0.8).max() == 1  # ceil(0.96)
