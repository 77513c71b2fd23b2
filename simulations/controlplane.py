"""The control plane as it behaves: Prometheus scrapes, KEDA's operator loop, the HPA, Knative's KPA.

Sources (read from upstream code, see ../shared/KEDA.md):
- HPA: kubernetes ``pkg/controller/podautoscaler/horizontal.go`` (``stabilizeRecommendationWithBehaviors``,
  ``convertDesiredReplicasWithBehaviorRate``, ``calculateScalingUpLimitWithScalingPolicies``) and
  ``replica_calculator.go`` (``GetExternalPerPodMetricReplicas``, ``calcPlainMetricReplicas``): sync every
  15 s, tolerance 0.1 (per direction when ``behavior`` sets it), default behaviour scale-up window 0 s with
  policies max(100 %, 4 pods) per 15 s, scale-down window 300 s with 100 % per 15 s; ``selectPolicy`` Max,
  Min or Disabled; a policy's period counts the replicas added and removed within it.
- KEDA: ``pkg/scaling/executor/scale_scaledobjects.go``: 0 -> max(minReplicaCount, 1) when a trigger is
  active, -> 0 once ``lastActiveTime + cooldownPeriod`` passed with all triggers inactive (only when
  ``minReplicaCount`` is 0); ``pollingInterval`` 30 s and ``cooldownPeriod`` 300 s by default;
  ``external-push``: each value pushed triggers an immediate scale check (``startPushScalers`` calls
  ``RequestScale`` with it): ``true`` activates, ``false`` releases once the cooldown has passed. A
  scaler error never scales to zero; ``pkg/fallback``: past ``failureThreshold`` consecutive metric
  errors the HPA gets the fallback.
- Knative KPA: ``pkg/autoscaler/scaling/autoscaler.go`` ``Scale``: every 2 s, stable window 60 s, panic
  window 10 % of it (6 s), panic threshold 200 %, target utilisation 70 %, max scale-up rate 1000, max
  scale-down rate 2, scale-to-zero grace period 30 s.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from simulations.fleet import Fleet
from simulations.tsdb import ScrapeStore as ScrapeStore  # re-exported: policies import it from here

PERIOD_S = 15.0  # HPA scaling-policy period used by the defaults


# -- the HPA ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HpaPolicy:
    kind: str  # "Pods" or "Percent"
    value: int
    period_s: float = PERIOD_S


SELECT_POLICIES = ("Max", "Min", "Disabled")


@dataclass(frozen=True)
class HpaBehavior:
    """``spec.behavior``; defaults are Kubernetes' (autoscaling/v2 defaulting). ``*_tolerance``: the
    per-direction tolerance (Kubernetes 1.33+, HPAConfigurableTolerance); 0.1 is the controller's default
    (``--horizontal-pod-autoscaler-tolerance``) when the field is not set."""

    up_window_s: float = 0.0
    up_policies: tuple[HpaPolicy, ...] = (HpaPolicy("Percent", 100), HpaPolicy("Pods", 4))
    down_window_s: float = 300.0
    down_policies: tuple[HpaPolicy, ...] = (HpaPolicy("Percent", 100),)
    up_select: str = "Max"
    down_select: str = "Max"
    up_tolerance: float = 0.1
    down_tolerance: float = 0.1

    def within_tolerance(self, ratio: float) -> bool:
        """``Tolerances.isWithin``: no change while 1 - down <= ratio <= 1 + up."""
        return 1.0 - self.down_tolerance <= ratio <= 1.0 + self.up_tolerance


@dataclass
class Hpa:
    min_replicas: int
    max_replicas: int
    behavior: HpaBehavior = field(default_factory=HpaBehavior)
    # One tolerance both ways (the controller's --horizontal-pod-autoscaler-tolerance) in place of the
    # behavior's per-direction ones; None keeps those.
    tolerance: float | None = None
    sync_s: float = 15.0
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[float, int]] = field(default_factory=list)  # (time, replica change)

    def __post_init__(self) -> None:
        if self.tolerance is not None:
            self.behavior = replace(self.behavior, up_tolerance=self.tolerance, down_tolerance=self.tolerance)

    @staticmethod
    def external_average_value(value: float, target: float, current: int, tolerance: float = 0.1) -> int:
        """``GetExternalPerPodMetricReplicas``: ceil(value / target) unless within tolerance of current.

        Worked example: value 10.5, target 1, current 10: ratio 1.05 is within 0.1, so 10 stays; 11.5 gives
        ratio 1.15 and ceil(11.5) = 12.
        """
        if current > 0 and abs(value / (target * current) - 1.0) <= tolerance:
            return current
        return math.ceil(value / target)

    def external_desired(self, value: float, target: float, current: int) -> int:
        """``GetExternalPerPodMetricReplicas`` with this HPA's per-direction tolerances. Worked example,
        tolerance 0 both ways: value 11, target 1, current 10: ratio 1.1, outside [1, 1], so 11 (the default
        0.1 would hold 10)."""
        if current > 0 and self.behavior.within_tolerance(value / (target * current)):
            return current
        return math.ceil(value / target)

    @staticmethod
    def pods_average_value(
        values: np.ndarray, target: float, current: int, missing: int, tolerance: float = 0.1
    ) -> int:
        """``calcPlainMetricReplicas`` for a Pods metric (non-CPU, so no unready-pod special case)."""
        ready = len(values)
        if ready == 0:
            return current
        ratio = float(values.mean()) / target
        if missing == 0:
            if abs(1.0 - ratio) <= tolerance:
                return current
            return math.ceil(ratio * ready)
        # Missing pods: assumed at the target when scaling down, at 0 when scaling up.
        fill = target if ratio < 1.0 else 0.0
        new_ratio = (float(values.sum()) + fill * missing) / (target * (ready + missing))
        if abs(1.0 - new_ratio) <= tolerance or (new_ratio < 1.0) != (ratio < 1.0):
            return current
        new = math.ceil(new_ratio * (ready + missing))
        if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
            return current
        return new

    def normalize(self, desired: int, current: int, now_s: float) -> int:
        """Stabilisation windows, then scaling policies, then min/max.

        Upstream: ``normalizeDesiredReplicasWithBehaviors``.
        """
        b = self.behavior
        up_rec = down_rec = desired
        for t, rec in self.recommendations:
            if t > now_s - b.up_window_s:
                up_rec = min(up_rec, rec)
            if t > now_s - b.down_window_s:
                down_rec = max(down_rec, rec)
        horizon = max(b.up_window_s, b.down_window_s)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now_s - horizon]
        self.recommendations.append((now_s, desired))
        rec = max(current, up_rec)
        rec = min(rec, down_rec)
        if rec > current:
            limit = max(self._up_limit(current, now_s), current)
            rec = min(rec, limit, self.max_replicas)
        elif rec < current:
            limit = min(self._down_limit(current, now_s), current)
            rec = max(rec, limit, self.min_replicas)
        return max(self.min_replicas, min(self.max_replicas, rec))

    def _changed(self, now_s: float, period_s: float, sign: int) -> int:
        return sum(abs(c) for t, c in self.events if t > now_s - period_s and c * sign > 0)

    def _period_start(self, current: int, now_s: float, period_s: float) -> int:
        """Replicas at the start of a policy's period: current - added + deleted within it."""
        return current - self._changed(now_s, period_s, +1) + self._changed(now_s, period_s, -1)

    def _up_limit(self, current: int, now_s: float) -> int:
        """``calculateScalingUpLimitWithScalingPolicies``: Max takes the largest proposal, Min the smallest,
        Disabled none. Worked example: from 2, Percent 100 and Pods 4 per 15 s: proposals 4 and 6, Max 6."""
        b = self.behavior
        if b.up_select == "Disabled" or not b.up_policies:
            return current
        proposals = []
        for p in b.up_policies:
            start = self._period_start(current, now_s, p.period_s)
            if p.kind == "Pods":
                proposals.append(start + p.value)
            else:
                proposals.append(math.ceil(start * (1 + p.value / 100)))
        return min(proposals) if b.up_select == "Min" else max(proposals)

    def _down_limit(self, current: int, now_s: float) -> int:
        """``calculateScalingDownLimitWithBehaviors``: Max allows the largest change (the smallest count)."""
        b = self.behavior
        if b.down_select == "Disabled" or not b.down_policies:
            return current
        proposals = []
        for p in b.down_policies:
            start = self._period_start(current, now_s, p.period_s)
            if p.kind == "Pods":
                proposals.append(start - p.value)
            else:
                proposals.append(int(start * (1 - p.value / 100)))
        return max(proposals) if b.down_select == "Min" else min(proposals)

    def record(self, now_s: float, change: int) -> None:
        if change:
            self.events.append((now_s, change))
            self.events = [(t, c) for t, c in self.events if t > now_s - 1800]


# -- KEDA ------------------------------------------------------------------------------------------------
FALLBACK_BEHAVIORS = ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower")


@dataclass(frozen=True)
class Fallback:
    """``spec.fallback``: past ``failure_threshold`` consecutive metric errors KEDA feeds the HPA
    ``replicas`` (as the metric value x target), shaped by ``behavior``."""

    failure_threshold: int
    replicas: int
    behavior: str = "static"

    def replicas_for(self, current: int) -> int:
        if self.behavior == "currentReplicas":
            return current
        if self.behavior == "currentReplicasIfHigher":
            return max(current, self.replicas)
        if self.behavior == "currentReplicasIfLower":
            return min(current, self.replicas)
        return self.replicas


@dataclass
class Keda:
    """A ScaledObject: KEDA's activation/deactivation around an HPA whose metric comes from ``metric``."""

    hpa: Hpa
    min_replica_count: int = 0
    polling_s: float = 30.0
    cooldown_s: float = 300.0
    fallback: Fallback | None = None
    last_active_s: float | None = None
    activations: int = 0
    failures: int = 0  # consecutive GetMetrics errors (the ScaledObject's health status)
    fallbacks: int = 0  # HPA syncs fed by the fallback

    def metric(self, value: float | None, current: int) -> float | None:
        """One GetMetrics answer as KEDA passes it on (``fallback.GetMetricsWithFallback``): an error counts
        towards ``failureThreshold`` and, once past it (the 4th error at 3), becomes the fallback's replicas;
        a success resets the count. None: the error reaches the HPA, which keeps the current count."""
        if value is not None:
            self.failures = 0
            return value
        self.failures += 1
        if self.fallback is not None and self.failures > self.fallback.failure_threshold:
            self.fallbacks += 1
            return float(self.fallback.replicas_for(current))
        return None

    def check(self, fleet: Fleet, now_s: float, active: bool | None) -> None:
        """One scale check (a poll, or a pushed ``true``). ``active`` None: the scaler errored."""
        current = fleet.replicas
        if active is None:
            return  # KEDA.md: a scaler error never scales to zero (fallback is not modelled)
        if active:
            self.last_active_s = now_s
            if current == 0:
                # KEDA scales the Deployment itself; the HPA's scale-event history is its own actions only.
                fleet.scale_to(max(self.min_replica_count, 1), now_s)
                self.activations += 1
            return
        if current > 0 and self.min_replica_count == 0:
            since = self.last_active_s if self.last_active_s is not None else 0.0
            if now_s - since >= self.cooldown_s:
                fleet.scale_to(0, now_s)
        elif current < self.min_replica_count:
            fleet.scale_to(self.min_replica_count, now_s)

    def hpa_sync(self, fleet: Fleet, now_s: float, desired: int | None) -> None:
        """One HPA sync: ``desired`` is the raw replica count from the metric (None: metric error, no change).

        The HPA does nothing at 0 replicas (scaling is disabled there; KEDA owns 0 <-> 1).
        """
        current = fleet.replicas
        if current == 0 or desired is None:
            return
        new = self.hpa.normalize(desired, current, now_s)
        if new != current:
            fleet.scale_to(new, now_s)
            self.hpa.record(now_s, new - current)


# -- Knative KPA -----------------------------------------------------------------------------------------
@dataclass
class Kpa:
    """Knative's autoscaler on concurrency (its own control loop: no KEDA, no HPA)."""

    target_per_pod: float  # autoscaling.knative.dev/target (containerConcurrency target)
    max_replicas: int
    min_replicas: int = 0
    target_utilization: float = 0.70
    stable_window_s: float = 60.0
    panic_window_fraction: float = 0.10
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace_s: float = 30.0
    tick_s: float = 2.0
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    panic_since_s: float | None = None
    max_panic_pods: int = 0
    zero_since_s: float | None = None

    def observe(self, now_s: float, concurrency: float) -> None:
        """A per-second sample of time-averaged concurrency (queue-proxy / activator reports)."""
        self.samples.append((now_s, concurrency))
        while self.samples and self.samples[0][0] <= now_s - self.stable_window_s:
            self.samples.popleft()

    def _average(self, now_s: float, window_s: float) -> float:
        vals = [c for t, c in self.samples if t > now_s - window_s]
        return sum(vals) / len(vals) if vals else 0.0

    def desired(self, now_s: float, ready: int) -> int:
        """``Scale``: stable and panic pod counts, panic mode holds the maximum (never scales down)."""
        target = self.target_per_pod * self.target_utilization
        ready_f = max(1.0, float(ready))
        max_up = math.ceil(self.max_scale_up_rate * ready_f)
        max_down = math.floor(ready_f / self.max_scale_down_rate)
        stable = self._average(now_s, self.stable_window_s)
        panic = self._average(now_s, self.stable_window_s * self.panic_window_fraction)
        dspc = min(max(math.ceil(stable / target), max_down), max_up)
        dppc = min(max(math.ceil(panic / target), max_down), max_up)
        over = dppc / ready_f >= self.panic_threshold
        if over:
            self.panic_since_s = now_s
        elif self.panic_since_s is not None and now_s >= self.panic_since_s + self.stable_window_s:
            self.panic_since_s = None
            self.max_panic_pods = 0
        want = dspc
        if self.panic_since_s is not None:
            self.max_panic_pods = max(self.max_panic_pods, dppc, ready)
            want = self.max_panic_pods
        return max(self.min_replicas, min(self.max_replicas, want))

    def tick(self, fleet: Fleet, now_s: float) -> None:
        want = self.desired(now_s, fleet.ready)
        current = fleet.replicas
        if want == 0 and current > 0:
            # Scale to zero only after the grace period (the activator is put in the path first).
            if self.zero_since_s is None:
                self.zero_since_s = now_s
            if now_s - self.zero_since_s < self.scale_to_zero_grace_s:
                return
        else:
            self.zero_since_s = None
        if want != current:
            fleet.scale_to(want, now_s)

    def poke(self, fleet: Fleet, now_s: float) -> None:
        """The activator at zero: a request arrived, scale up at once (activation scale 1)."""
        if fleet.replicas == 0:
            fleet.scale_to(1, now_s)


Clock = Callable[[], float]
