"""The KEDA / HPA / KPA models against their documented semantics (../shared/KEDA.md, upstream code)."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.controlplane import Fallback, Hpa, HpaBehavior, HpaPolicy, Keda, Kpa, ScrapeStore
from simulations.fleet import Fleet, FleetConfig
from simulations.policies import make_policy
from simulations.policy import Policy, SimSettings
from simulations.profile import profile_named
from simulations.trace import Trace


def _fleet(replicas: int, arrivals: tuple[float, ...] = (1e6,)) -> Fleet:
    n = len(arrivals)
    trace = Trace("t", np.asarray(arrivals), np.full(n, 100), np.full(n, 10))
    cfg = FleetConfig(profile_named("llama8b-h100"), cold_start_s=30.0, cold_start_jitter=0.0)
    return Fleet(trace, cfg, initial_replicas=replicas)


def test_external_metric_tolerance_is_ten_percent() -> None:
    # value 10.5 against target 1 x 10 replicas: ratio 1.05, inside the tolerance -> no change.
    assert Hpa.external_average_value(10.5, 1.0, 10) == 10
    assert Hpa.external_average_value(9.1, 1.0, 10) == 10
    # 11.5: ratio 1.15 -> ceil(11.5) = 12; 8.9: ratio 0.89 -> 9.
    assert Hpa.external_average_value(11.5, 1.0, 10) == 12
    assert Hpa.external_average_value(8.9, 1.0, 10) == 9
    # AverageValue with a threshold: 23 waiting at threshold 5 -> ceil(4.6) = 5.
    assert Hpa.external_average_value(23.0, 5.0, 1) == 5


def test_pods_metric_average_and_missing_pods() -> None:
    # 4 pods at 100 % against 80 %: ceil(1.25 x 4) = 5.
    assert Hpa.pods_average_value(np.full(4, 100.0), 80.0, 4, missing=0) == 5
    # Within tolerance (84 / 80 = 1.05): hold.
    assert Hpa.pods_average_value(np.full(4, 84.0), 80.0, 4, missing=0) == 4
    # Scaling up with a missing pod: it counts as 0 -> (400 + 0) / (80 x 5) = 1.0: hold.
    assert Hpa.pods_average_value(np.full(4, 100.0), 80.0, 5, missing=1) == 5


def test_scale_down_stabilization_window_holds_the_highest_recommendation() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=20)  # default: scale-down window 300 s
    assert hpa.normalize(10, 10, 0.0) == 10
    assert hpa.normalize(2, 10, 15.0) == 10  # 10 was recommended within the last 300 s
    assert hpa.normalize(2, 10, 299.0) == 10
    assert hpa.normalize(2, 10, 301.0) == 2  # the 10 at t=0 left the window; 2s since


def test_scale_up_policies_limit_growth_per_period() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=100)
    # Default up policies: max(100 %, 4 pods) per 15 s: from 2, at most max(4, 6) = 6.
    assert hpa.normalize(50, 2, 0.0) == 6
    hpa.record(0.0, 4)
    # 10 s later, still the same period: started at 2, so the limit is still 6.
    assert hpa.normalize(50, 6, 10.0) == 6
    # A new period from 6: max(12, 10) = 12.
    assert hpa.normalize(50, 6, 16.0) == 12


def test_custom_behavior_without_down_window_follows_at_once() -> None:
    hpa = Hpa(min_replicas=1, max_replicas=20, behavior=HpaBehavior(down_window_s=0.0))
    hpa.normalize(10, 10, 0.0)
    assert hpa.normalize(3, 10, 15.0) == 3


def test_keda_activation_zero_to_one_and_cooldown() -> None:
    f = _fleet(0)
    keda = Keda(Hpa(1, 10), min_replica_count=0, cooldown_s=300.0)
    keda.check(f, 0.0, True)
    assert f.replicas == 1  # 0 -> max(minReplicaCount, 1)
    keda.check(f, 30.0, False)
    assert f.replicas == 1  # inactive, but lastActive + cooldown not reached
    keda.check(f, 299.0, False)
    assert f.replicas == 1
    keda.check(f, 300.0, False)
    assert f.replicas == 0
    keda.check(f, 330.0, None)  # a scaler error never scales (and never to zero)
    assert f.replicas == 0


def test_keda_error_never_scales_to_zero_and_hpa_does_nothing_at_zero() -> None:
    f = _fleet(3)
    keda = Keda(Hpa(1, 10), min_replica_count=0, cooldown_s=0.0)
    keda.check(f, 1000.0, None)
    assert f.replicas == 3
    f0 = _fleet(0)
    keda.hpa_sync(f0, 0.0, 5)
    assert f0.replicas == 0  # the HPA is disabled at 0 replicas; KEDA owns 0 <-> 1


def _scaler_in_the_loop(
    arrivals: np.ndarray, given: dict[str, str], replicas: int, seconds: float
) -> tuple[Policy, ScrapeStore, list[tuple[float, int]]]:
    """The scaler policy, KEDA and the HPA over ``arrivals`` on a 60 s cold-start fleet of ``replicas``,
    stepped for ``seconds``; with the fleet's size after each step."""
    n = len(arrivals)
    trace = Trace("t", arrivals, np.full(n, 100), np.full(n, 10))
    sim = SimSettings(profile=profile_named("llama8b-h100"), tail_s=60.0)
    pol = make_policy("scaler", sim, trace, given)
    pol.initial_replicas = replicas
    f = Fleet(
        trace, FleetConfig(sim.profile, cold_start_s=60.0, cold_start_jitter=0.0), initial_replicas=replicas
    )
    store = ScrapeStore()
    pol.attach(f, store)
    sizes = []
    for k in range(int(seconds / sim.dt_s)):
        t = k * sim.dt_s
        store.collect(f, t)
        pol.tick(k, t)
        f.step(t, sim.dt_s)
        sizes.append((t, f.replicas))
    return pol, store, sizes


def test_stream_is_active_push_wakes_from_zero_before_the_poll() -> None:
    # The scaler at zero with requests queued at the gateway: the push on the refresh after the next
    # scrape activates at once instead of at the next 30 s poll.
    pol, store, sizes = _scaler_in_the_loop(np.arange(5.0, 40.0, 0.5), {"polling_s": "30"}, 0, 40.0)
    activated_at = next(t for t, replicas in sizes if replicas > 0)
    gateway = next(tg for tg in store.targets if tg.job == "gateway")
    assert gateway.times[:2] == [0.5, 15.5]  # its scrape offset (a hash of the target, seed 0) is 0.5 s
    # The scrape at 15.5 s is the first to show the gateway queue (arrivals start at 5 s), the refresh at 16 s
    # (every 2 s) decides and pushes; KEDA's polls are at 0 and 30 s, so without the push it would be 30 s.
    assert activated_at == 16.0
    assert pol.pushes >= 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cooldown", "released_at"), [("0", 766.0), ("30", 780.0)])
def test_pushed_inactive_releases_at_once_without_a_cooldown(cooldown: str, released_at: float) -> None:
    # KEDA calls RequestScale with every pushed value, false included. A request every 2 s from 12 to
    # 706 s on one warm replica, then none: the refresh at 766 s reads 60 s idle, a cold start's worth,
    # and pushes inactive. With cooldownPeriod 0 (deploy/scaling) that push releases at once; with 30 s
    # it waits for the poll at 780 s (polls every 30 s; the last active one was at 750 s).
    given = {"polling_s": "30", "cooldown_s": cooldown}
    pol, _, sizes = _scaler_in_the_loop(np.arange(12.0, 707.0, 2.0), given, 1, 900.0)
    inactive = [t for t, d in pol.decisions if d.valid and not d.active]  # type: ignore[attr-defined]
    assert inactive[0] == 766.0
    assert next(t for t, replicas in sizes if replicas == 0) == released_at


def test_kpa_panic_mode_never_scales_down_and_stable_window_averages() -> None:
    kpa = Kpa(target_per_pod=10.0, max_replicas=50)
    for s in range(60):
        kpa.observe(float(s), 7.0)  # exactly one pod's worth at 70 % utilisation
    assert kpa.desired(60.0, ready=1) == 1
    for s in range(60, 66):
        kpa.observe(float(s), 70.0)  # a burst: panic average 70 / 7 = 10 pods, >= 2x ready
    assert kpa.desired(66.0, ready=1) == 10
    assert kpa.panic_since_s == 66.0
    for s in range(66, 80):
        kpa.observe(float(s), 0.0)
    # In panic the count never goes down, although the burst is over.
    assert kpa.desired(80.0, ready=10) == 10
    # 60 s after the last over-threshold tick, panic ends and the stable average rules.
    for s in range(80, 140):
        kpa.observe(float(s), 7.0)
    assert kpa.desired(140.0, ready=10) < 10


def test_kpa_scale_to_zero_waits_for_the_grace_period() -> None:
    f = _fleet(1)
    kpa = Kpa(target_per_pod=10.0, max_replicas=5)
    for s in range(120):
        kpa.observe(float(s), 0.0)
    kpa.tick(f, 120.0)
    assert f.replicas == 1
    kpa.tick(f, 149.0)
    assert f.replicas == 1
    kpa.tick(f, 150.0)
    assert f.replicas == 0


@pytest.mark.parametrize(
    ("up", "down", "value", "current", "want"),
    [
        (0.1, 0.1, 11.0, 10, 10),  # ratio 1.1: within the default 10 %
        (0.0, 0.0, 11.0, 10, 11),  # tolerance 0 (deploy/scaling): +1 above 10 replicas acts
        (0.0, 0.0, 9.0, 10, 9),
        (0.0, 0.2, 9.0, 10, 10),  # ratio 0.9 within the scale-down tolerance only
        (0.0, 0.2, 10.5, 10, 11),  # ratio 1.05 outside the scale-up one
    ],
)
def test_per_direction_tolerance(up: float, down: float, value: float, current: int, want: int) -> None:
    hpa = Hpa(1, 100, HpaBehavior(up_tolerance=up, down_tolerance=down))
    assert hpa.external_desired(value, 1.0, current) == want


@pytest.mark.parametrize(
    ("select", "want"),
    [
        ("Max", 6),  # from 2: Percent 100 -> 4, Pods 4 -> 6: the larger change
        ("Min", 4),
        ("Disabled", 2),
    ],
)
def test_scale_up_select_policy(select: str, want: int) -> None:
    hpa = Hpa(1, 100, HpaBehavior(up_select=select))
    assert hpa.normalize(50, 2, 0.0) == want


def test_policy_period_counts_replicas_added_and_removed() -> None:
    # Percent 1000 per 15 s (deploy/scaling's scale-up): 2 went to 10 at t=0, then down to 4 at t=5: the
    # period started at 4 - 8 + 6 = 2 replicas, so the limit is 2 x 11 = 22, not 4 x 11 = 44.
    hpa = Hpa(1, 100, HpaBehavior(up_policies=(HpaPolicy("Percent", 1000, 15.0),), down_window_s=0.0))
    hpa.record(0.0, 8)
    hpa.record(5.0, -6)
    assert hpa.normalize(100, 4, 10.0) == 22
    assert hpa.normalize(100, 4, 25.0) == 44  # both events left the period


def test_scale_down_select_min_takes_the_smaller_change() -> None:
    b = HpaBehavior(
        down_window_s=0.0,
        down_policies=(HpaPolicy("Percent", 50), HpaPolicy("Pods", 1)),
        down_select="Min",
    )
    assert Hpa(1, 100, b).normalize(1, 10, 0.0) == 9  # Pods 1 (-> 9) rather than Percent 50 (-> 5)


def test_keda_fallback_after_failure_threshold() -> None:
    keda = Keda(Hpa(1, 10), fallback=Fallback(3, 2, "currentReplicasIfHigher"))
    # Three errors reach the HPA as errors (it holds); the fourth is past the threshold: fallback.
    assert [keda.metric(None, 1) for _ in range(3)] == [None, None, None]
    assert keda.metric(None, 1) == 2.0  # max(current 1, replicas 2)
    assert keda.metric(None, 5) == 5.0  # a loaded fleet is never shrunk by the fallback
    assert keda.metric(3.0, 5) == 3.0 and keda.failures == 0  # a success resets the count
    assert Keda(Hpa(1, 10), fallback=Fallback(0, 4, "static")).metric(None, 9) == 4.0
    assert Keda(Hpa(1, 10)).metric(None, 9) is None  # no fallback: the error reaches the HPA
