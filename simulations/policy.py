"""The autoscalers compared, each acting only through the modelled control plane, and the oracle bound.

- ``scaler``: this project's ``scaler.core.decision.decide``, unchanged, fed by ``MemorySource`` (the
  simulator's stand-in for Prometheus + Kubernetes), refreshed every 2 s like the real refresher, reaching
  the fleet through KEDA (``external-push`` trigger, StreamIsActive) and the HPA (metric value = desired,
  target 1), with the KEDA and HPA settings of the ScaledObject in deploy/scaling (``deployed``).
- ``keda-queue``: KEDA's Prometheus scaler (``pkg/scalers/prometheus_scaler.go``) on
  ``sum(vllm:num_requests_waiting)`` with ``threshold`` (AverageValue), ``activationThreshold`` 0, KEDA and
  HPA defaults. ``minReplicaCount`` 1: at 0 pods the query is empty (``ignoreNullValues`` makes it 0), so
  with 0 it would never wake up; nobody runs it that way.
- ``keda-tuned``: what a competent team deploys with KEDA alone: two Prometheus triggers, one on
  ``sum(vllm:num_requests_running + vllm:num_requests_waiting)`` with ``threshold`` (AverageValue; default
  the scaler's queue target, 70 % of the knee concurrency), one on the gateway's pending requests (the
  activation at zero, KEDA's prometheus scaler having no separate activation query), ``minReplicaCount``
  0, KEDA and HPA defaults otherwise.
- ``hpa-gpu``: an HPA on the Pods metric ``DCGM_FI_DEV_GPU_UTIL`` (prometheus-adapter), averageValue 80,
  min 1, Kubernetes defaults (``replica_calculator.go``); pods being deleted are ignored, as the HPA does.
- ``hindsight``: the oracle LP's replica schedule (``simulations.oracle``), rounded up, scaled (``scale``,
  sized to the target attainment when empty), each start issued one longest cold start ahead, set on the
  Deployment directly; the static fleet when that is cheaper at its target attainment.
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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from scaler.core.decision import Decision, decide
from scaler.core.target import target_from_ref
from simulations.controlplane import Hpa, HpaBehavior, Keda, ScrapeStore
from simulations.deployed import DeployedScaling, deployed_scaling
from simulations.exposition import DEPLOYMENT as DEPLOYMENT
from simulations.exposition import NAMESPACE as NAMESPACE
from simulations.fleet import Fleet
from simulations.profile import HardwareProfile
from simulations.source import GATEWAY_QUERY, MemorySource

SCALEDOBJECT = "llm"
KEY = (NAMESPACE, SCALEDOBJECT, DEPLOYMENT)
POLICIES = ("scaler", "hindsight", "keda-queue", "keda-tuned", "hpa-gpu", "kpa", "static-peak")
REFRESH_S = 2.0  # the real refresher's default period
# Headroom below the knee for the queue target: Knative's default target-utilization-percentage (70).
TARGET_UTILISATION = 0.7


class PolicyError(ValueError):
    """A bad policy name or setting; the message says what is allowed."""


# -- settings --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimSettings:
    """What every policy of a run shares. ``warmup_s``: replay this much of the trace's opening, unscored,
    before the scored run (``engine.simulate``); ``scaling_manifest``: the ScaledObject the ``scaler`` runs
    with (default: deploy/scaling's for the profile's backend)."""

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
    ttft_slo_per_1k_prompt_s: float = 0.0
    warmup_s: float = 600.0
    scaling_manifest: Path | None = None

    def ttft_deadline_s(self, input_tokens: np.ndarray) -> np.ndarray:
        """Each request's TTFT deadline: the SLO plus, for a length-aware SLO, so much per 1,000 prompt
        tokens. Worked example: 1 s + 0.5 s per 1k, a 4,000-token prompt: 3 s."""
        deadline: np.ndarray = self.ttft_slo_s + self.ttft_slo_per_1k_prompt_s * input_tokens / 1000.0
        return deadline


DEFAULTS: dict[str, dict[str, str]] = {
    # Empty: as the ScaledObject in deploy/scaling sets it (``deployed``); a value overrides it.
    "scaler": {"polling_s": "", "cooldown_s": "", "hpa_down_window_s": "", "min_replicas": ""},
    "keda-queue": {
        "threshold": "5",
        "activation_threshold": "0",
        "polling_s": "30",
        "cooldown_s": "300",
        "hpa_down_window_s": "300",
        "min_replicas": "1",
    },
    "keda-tuned": {
        "threshold": "",  # running + waiting per replica; empty: the scaler's queue target (70 % of the knee)
        "polling_s": "30",
        "cooldown_s": "300",
        "hpa_down_window_s": "300",
        "min_replicas": "0",
    },
    "hpa-gpu": {"target_util_percent": "80", "hpa_down_window_s": "300", "min_replicas": "1"},
    "kpa": {"target": "", "target_utilization": "0.7", "min_replicas": "0"},
    "static-peak": {"replicas": "", "target_attainment": "0.99"},
    "hindsight": {"scale": "", "target_attainment": "0.99"},
}


def scaler_metadata(settings: SimSettings, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ScaledObject trigger metadata the comparison uses for ``scaler``: the SLO alone (issue 15), no
    per-trace threshold. The capacity per replica is learned from the fleet's own metrics; the gateway's
    pending requests wake it from zero, as ``deploy/scaling`` ships it with the KEDA HTTP add-on."""
    md = {
        "backend": settings.profile.backend,
        "deployment": DEPLOYMENT,
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


def keda_deployed(d: DeployedScaling, settings: Mapping[str, str], policy: str, max_replicas: int) -> Keda:
    """KEDA and its HPA as the ScaledObject ``d`` sets them; a non-empty setting overrides its field. The
    HPA's maximum is the simulation's ``max_replicas`` (every policy's), not the manifest's budget."""

    def given(key: str, default: float) -> float:
        return _float(settings, key, policy) if settings.get(key, "") != "" else default

    min_rc = int(given("min_replicas", d.min_replica_count))
    behavior = replace(d.behavior, down_window_s=given("hpa_down_window_s", d.behavior.down_window_s))
    return Keda(
        Hpa(max(1, min_rc), max_replicas, behavior),
        min_replica_count=min_rc,
        polling_s=given("polling_s", d.polling_s),
        cooldown_s=given("cooldown_s", d.cooldown_s),
        fallback=d.fallback,
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
    deployed: DeployedScaling | None = None
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
        self.deployed = deployed_scaling(self.sim.profile.backend, self.sim.scaling_manifest)
        self.keda = keda_deployed(self.deployed, self.settings, self.name, self.sim.max_replicas)
        # Report what ran: the manifest's values, or the overrides given.
        k = self.keda
        self.settings.update(
            {
                "polling_s": f"{k.polling_s:g}",
                "cooldown_s": f"{k.cooldown_s:g}",
                "hpa_down_window_s": f"{k.hpa.behavior.down_window_s:g}",
                "min_replicas": str(k.min_replica_count),
                "manifest": self.deployed.source,
            }
        )
        if self.deployed.defaulted:  # e.g. a tolerance kept in an overlay: the controller's default applies
            self.settings["manifest_defaults"] = ", ".join(self.deployed.defaulted)

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
            pushed = self.take_push(t_s)
            if pushed is not None:  # KEDA's push loop calls RequestScale with every value, false too
                self.keda.check(self.fleet, t_s, pushed)
        if _due(k, self.keda.polling_s, dt):
            self.metric(t_s)  # KEDA's poll calls GetMetrics too (its value feeds only the metrics cache)
            self.keda.check(self.fleet, t_s, self.is_active(t_s))
        if _due(k, self.keda.hpa.sync_s, dt):
            current = self.fleet.replicas
            if current:  # at 0 replicas the HPA is disabled (KEDA owns 0 <-> 1) and asks for nothing
                value = self.keda.metric(self.metric(t_s), current)  # through KEDA's fallback
                desired = None if value is None else self.keda.hpa.external_desired(value, 1.0, current)
                self.keda.hpa_sync(self.fleet, t_s, desired)
