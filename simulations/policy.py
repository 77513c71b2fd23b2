"""The autoscalers compared, each acting only through the modelled control plane, and the oracle bound.

- ``scaler``: this project's ``scaler.core.decision.decide``, unchanged, fed by ``MemorySource`` (the
  simulator's stand-in for Prometheus + Kubernetes), refreshed every 2 s like the real refresher, reaching
  the fleet through KEDA (``external-push`` trigger, StreamIsActive) and the HPA (metric value = desired,
  target 1).
- ``keda-queue``: KEDA's Prometheus scaler (``pkg/scalers/prometheus_scaler.go``) on
  ``sum(vllm:num_requests_waiting)`` with ``threshold`` (AverageValue), ``activationThreshold`` 0, KEDA and
  HPA defaults. ``minReplicaCount`` 1: at 0 pods the query is empty (``ignoreNullValues`` makes it 0), so
  with 0 it would never wake up; nobody runs it that way.
- ``hpa-gpu``: an HPA on the Pods metric ``DCGM_FI_DEV_GPU_UTIL`` (prometheus-adapter), averageValue 80,
  min 1, Kubernetes defaults (``replica_calculator.go``).
- ``kpa``: Knative Serving's KPA on concurrency (``pkg/autoscaler/scaling/autoscaler.go``, defaults of
  ``config-autoscaler``), target per pod = the profile's knee concurrency, scale to zero via the activator.
- ``static-peak``: always on, with the fewest replicas that meet the SLO for 99 % of this trace's requests
  (found by simulation: what a load test at the expected peak gives a team that provisions for the peak);
  ``replicas=N`` fixes it instead.
- ``oracle``: not a policy but a bound, see ``oracle_bound``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from scaler.core.decision import Decision, decide
from scaler.core.target import target_from_ref
from simulations.controlplane import Hpa, HpaBehavior, Keda, ScrapeStore
from simulations.exposition import DEPLOYMENT as DEPLOYMENT
from simulations.exposition import NAMESPACE as NAMESPACE
from simulations.fleet import Fleet
from simulations.profile import HardwareProfile
from simulations.source import GATEWAY_QUERY, MemorySource

SCALEDOBJECT = "llm"
KEY = (NAMESPACE, SCALEDOBJECT, DEPLOYMENT)
POLICIES = ("scaler", "keda-queue", "hpa-gpu", "kpa", "static-peak")
REFRESH_S = 2.0  # the real refresher's default period
# Headroom below the knee for the queue target: Knative's default target-utilization-percentage (70).
TARGET_UTILISATION = 0.7


class PolicyError(ValueError):
    """A bad policy name or setting; the message says what is allowed."""


# -- settings --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimSettings:
    profile: HardwareProfile
    cold_start_s: float = 60.0
    ttft_slo_s: float = 1.0
    seed: int = 0
    dt_s: float = 0.25
    scrape_s: float = 15.0
    tail_s: float = 300.0
    max_replicas: int = 32
    gateway_timeout_s: float = 300.0
    cold_start_jitter: float = 0.1


DEFAULTS: dict[str, dict[str, str]] = {
    "scaler": {"polling_s": "30", "cooldown_s": "60", "hpa_down_window_s": "0", "min_replicas": "0"},
    "keda-queue": {
        "threshold": "5",
        "activation_threshold": "0",
        "polling_s": "30",
        "cooldown_s": "300",
        "hpa_down_window_s": "300",
        "min_replicas": "1",
    },
    "hpa-gpu": {"target_util_percent": "80", "hpa_down_window_s": "300", "min_replicas": "1"},
    "kpa": {"target": "", "target_utilization": "0.7", "min_replicas": "0"},
    "static-peak": {"replicas": "", "target_attainment": "0.99"},
}


def scaler_metadata(settings: SimSettings, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ScaledObject trigger metadata the comparison uses for ``scaler``.

    targetQueuePerReplica is 70 % of the profile's knee concurrency (requests running + waiting per replica
    where TPOT starts to climb), the same headroom Knative's default target utilisation gives ``kpa``: 32 x
    0.7 -> 22 for the 70B profile. Not max_num_seqs: at max_num_seqs a replica is already saturated.
    """
    p = settings.profile
    md = {
        "backend": p.backend,
        "deployment": DEPLOYMENT,
        "targetQueuePerReplica": f"{math.floor(p.target_concurrency * TARGET_UTILISATION):d}",
        "latencySloSeconds": f"{settings.ttft_slo_s:g}",
        "latencyMetric": "ttft",
        "coldStartSeconds": f"{settings.cold_start_s:g}",
        "activationQuery": GATEWAY_QUERY,
    }
    md.update(overrides or {})
    return md


def _float(settings: Mapping[str, str], key: str, policy: str) -> float:
    try:
        v = float(settings[key])
    except ValueError:
        raise PolicyError(f"{policy}: setting {key} must be a number, got {settings[key]!r}") from None
    if not math.isfinite(v) or v < 0:
        raise PolicyError(f"{policy}: setting {key} must be a finite number >= 0, got {settings[key]!r}")
    return v


def _keda_from(settings: Mapping[str, str], policy: str, max_replicas: int) -> Keda:
    """KEDA and the HPA it manages, from a policy's settings (min_replicas, polling_s, cooldown_s, ...)."""
    min_rc = int(_float(settings, "min_replicas", policy))
    hpa = Hpa(
        max(1, min_rc),
        max_replicas,
        HpaBehavior(down_window_s=_float(settings, "hpa_down_window_s", policy)),
    )
    return Keda(
        hpa,
        min_replica_count=min_rc,
        polling_s=_float(settings, "polling_s", policy),
        cooldown_s=_float(settings, "cooldown_s", policy),
    )


def merged_settings(policy: str, given: Mapping[str, str]) -> dict[str, str]:
    if policy not in DEFAULTS:
        raise PolicyError(f"unknown policy {policy!r}; allowed: {', '.join(POLICIES)}")
    out = dict(DEFAULTS[policy])
    for k, v in given.items():
        if k not in out:
            allowed = ", ".join(sorted(out)) or "none"
            raise PolicyError(f"{policy}: unknown setting {k!r}; allowed: {allowed}")
        out[k] = v
    return out


def _due(k: int, every_s: float, dt_s: float) -> bool:
    return k % max(1, round(every_s / dt_s)) == 0


# -- policies --------------------------------------------------------------------------------------------
@dataclass
class Policy:
    name: str
    settings: dict[str, str]
    sim: SimSettings
    initial_replicas: int = 1
    fleet: Fleet | None = None
    store: ScrapeStore | None = None

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        self.fleet, self.store = fleet, store

    def tick(self, k: int, t_s: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release anything the policy started (the closed loop's server)."""


@dataclass
class ScalerPolicy(Policy):
    """The real decision core through KEDA and the HPA. ``decide`` is called exactly as the refresher does."""

    metadata: dict[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    decisions: list[tuple[float, Decision]] = field(default_factory=list)
    keda: Keda | None = None
    source: MemorySource | None = None
    pushed: bool | None = None
    pushes: int = 0
    now_s: float = 0.0

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        super().attach(fleet, store)
        # The same validation the gRPC service applies (including the activationQuery confinement).
        self.target = target_from_ref(NAMESPACE, SCALEDOBJECT, self.metadata)
        self.config = self.target.config
        self.source = MemorySource(fleet, store, clock=lambda: self.now_s)
        self.keda = _keda_from(self.settings, self.name, self.sim.max_replicas)

    # The three calls KEDA makes; the closed loop overrides them with real gRPC.
    def refresh(self, t_s: float) -> None:
        assert self.source is not None
        obs = self.source.collect([self.target])[KEY]
        self.decision = decide(obs.signals, obs.state, self.config, t_s)
        self.decisions.append((t_s, self.decision))

    def metric(self, t_s: float) -> float | None:
        d = self.decision
        return float(d.desired_replicas) if d is not None and d.valid else None

    def is_active(self, t_s: float) -> bool | None:
        d = self.decision
        return d.active if d is not None and d.valid else None

    def take_push(self, t_s: float) -> bool | None:
        """StreamIsActive: a value when the activity changed since the last push, else None."""
        d = self.decision
        if d is not None and d.valid and d.active != self.pushed:
            self.pushed = d.active
            self.pushes += 1
            return d.active
        return None

    def tick(self, k: int, t_s: float) -> None:
        assert self.fleet is not None and self.keda is not None
        self.now_s = t_s
        dt = self.sim.dt_s
        if _due(k, REFRESH_S, dt):
            self.refresh(t_s)
            if self.take_push(t_s) is True:  # false is ignored by KEDA
                self.keda.check(self.fleet, t_s, True)
        if _due(k, self.keda.polling_s, dt):
            self.metric(t_s)  # KEDA's poll calls GetMetrics too (its value feeds only the metrics cache)
            self.keda.check(self.fleet, t_s, self.is_active(t_s))
        if _due(k, self.keda.hpa.sync_s, dt):
            value = self.metric(t_s)
            current = self.fleet.replicas
            desired = None if value is None else Hpa.external_average_value(value, 1.0, current)
            self.keda.hpa_sync(self.fleet, t_s, desired)
