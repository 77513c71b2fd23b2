"""The autoscalers compared, each acting only through the modelled control plane, and the oracle bound.

- ``scaler``: this project's ``scaler.decision.decide``, unchanged, fed by ``MemorySource`` (the simulator's
  stand-in for Prometheus + Kubernetes), refreshed every 2 s like the real refresher, reaching the fleet
  through KEDA (``external-push`` trigger, StreamIsActive) and the HPA (metric value = desired, target 1).
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaler.decision import Decision, decide
from scaler.profile import VLLM_TTFT_BUCKETS_S
from scaler.query import Target
from scaler.refresher import target_from_ref
from scaler.signal import SignalName, Signals
from scaler.state import Observation, ReplicaSource, Series, State
from simulations.controlplane import Hpa, HpaBehavior, Keda, Kpa, ScrapeStore
from simulations.fleet import Fleet, Scrape
from simulations.profile import HardwareProfile
from simulations.trace import Trace

NAMESPACE, SCALEDOBJECT, DEPLOYMENT = "sim", "llm", "llm"
KEY = (NAMESPACE, SCALEDOBJECT, DEPLOYMENT)
POLICIES = ("scaler", "keda-queue", "hpa-gpu", "kpa", "static-peak")
HISTORY_S = 600.0  # demand history handed to decide(): the last 10 min at the scrape step
RATE_WINDOW_S = 60.0  # the scaler's rate window ("1m")
REFRESH_S = 2.0  # the real refresher's default period
# Headroom below the knee for the queue target: Knative's default target-utilization-percentage (70).
TARGET_UTILISATION = 0.7
# What activationQuery would be in a cluster; the memory source answers it with the gateway's queue.
GATEWAY_QUERY = 'sum(gateway_pending_requests{namespace="sim"})'


class PolicyError(ValueError):
    """A bad policy name or setting; the message says what is allowed."""


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: np.ndarray) -> float | None:
    """Prometheus' ``histogram_quantile`` on cumulative bucket counts (last = +Inf); None when empty.

    Worked example: buckets le=0.1: 90, le=0.25: 99, +Inf: 100 and q=0.95: rank 95 falls in (0.1, 0.25]
    five of nine counts in, so 0.1 + 0.15 x 5 / 9 = 0.183.
    """
    total = float(cumulative[-1])
    if total <= 0:
        return None
    rank = q * total
    i = int(np.searchsorted(cumulative, rank, side="left"))
    if i >= len(bounds):
        return float(bounds[-1])
    upper = bounds[i]
    lower = bounds[i - 1] if i > 0 else 0.0
    below = float(cumulative[i - 1]) if i > 0 else 0.0
    in_bucket = float(cumulative[i]) - below
    if in_bucket <= 0:
        return float(upper)
    return float(lower + (upper - lower) * (rank - below) / in_bucket)


@dataclass
class MemorySource:
    """The ``scaler.refresher.Source`` the simulator gives the real scaler: it reads the scrape store (what
    Prometheus holds) and the fleet (what the Kubernetes API says), as the production sources do.

    Signals come from the last scrape only, so the scaler sees what Prometheus would, one scrape late.
    """

    fleet: Fleet
    store: ScrapeStore
    clock: Any  # Callable[[], float]: simulated time
    latency_quantile: float = 0.99
    _cache_t: float | None = None
    _cache: tuple[Signals, dict[SignalName, Series], Series, Series] | None = None

    def collect(self, targets: Sequence[Target]) -> Mapping[tuple[str, str, str], Observation]:
        now = float(self.clock())
        obs = self.observe(now)
        return {(t.namespace, t.name, t.config.deployment): obs for t in targets}

    def _scrape_signals(self, s: Scrape, now: float) -> Signals:
        reporting = len(s.pods)
        queue = float(s.waiting.sum() + s.running.sum()) if reporting else None
        old = _window_start(self.store, s.t_s - RATE_WINDOW_S)
        tokens = None
        latency = None
        no_traffic: frozenset[SignalName] = frozenset()
        if reporting and old is not None and old.t_s < s.t_s:
            span = s.t_s - old.t_s
            tokens = (
                s.fleet_gen_total + s.fleet_prompt_total - old.fleet_gen_total - old.fleet_prompt_total
            ) / span
            inc = s.fleet_ttft_hist - old.fleet_ttft_hist
            latency = histogram_quantile(self.latency_quantile, VLLM_TTFT_BUCKETS_S, inc)
            if latency is None:
                no_traffic = frozenset({SignalName.LATENCY})
        gpu = float(s.gpu_util_percent.mean()) if len(s.gpu_pods) else None
        return Signals(
            current_replicas=None,
            ready_replicas=reporting,
            queue_requests=queue,
            tokens_per_s=tokens,
            gpu_util_percent=gpu,
            latency_s=latency,
            no_traffic=no_traffic,
        )

    def observe(self, now: float) -> Observation:
        last = self.store.at_or_before(now)
        if last is None:
            signals = Signals(current_replicas=None, ready_replicas=None)
            history: dict[SignalName, Series] = {}
            gateway = Series()
            replicas = Series()
        elif self._cache_t == last.t_s and self._cache is not None:
            signals, history, gateway, replicas = self._cache
        else:
            signals = self._scrape_signals(last, now)
            recent = [s for s in self.store.scrapes if last.t_s - HISTORY_S < s.t_s <= last.t_s]
            per = [(s.t_s, self._scrape_signals(s, now)) for s in recent]
            history = {}
            for name in (SignalName.QUEUE, SignalName.TOKENS, SignalName.GPU):
                pts = [(t, sig.value_of(name)) for t, sig in per]
                kept = [(t, v) for t, v in pts if v is not None]
                history[name] = Series(tuple(t for t, _ in kept), tuple(float(v) for _, v in kept))
            gateway = Series(tuple(s.t_s for s in recent), tuple(float(s.gateway_queue) for s in recent))
            replicas = Series(tuple(s.t_s for s in recent), tuple(float(s.replicas) for s in recent))
            self._cache_t, self._cache = last.t_s, (signals, history, gateway, replicas)
        f = self.fleet
        ages = tuple(float(now - f.created_at[i]) for i in np.flatnonzero(f.status == 1))
        signals = Signals(
            current_replicas=f.replicas,
            ready_replicas=signals.ready_replicas,
            queue_requests=signals.queue_requests,
            tokens_per_s=signals.tokens_per_s,
            gpu_util_percent=signals.gpu_util_percent,
            latency_s=signals.latency_s,
            no_traffic=signals.no_traffic,
        )
        state = State(
            warming_replicas=f.loading,
            warming_ages_s=ages,
            replica_source=ReplicaSource.SIMULATION,
            cold_start_samples_s=tuple(f.cold_start_samples_s[-20:]),
            demand_history=history,
            activation_value=float(last.gateway_queue) if last is not None else None,
            activation_history=gateway,
            replica_history=replicas,
        )
        return Observation(signals, state)


def _window_start(store: ScrapeStore, t_s: float) -> Scrape | None:
    for s in store.scrapes:
        if s.t_s >= t_s - 1e-9:
            return s
    return None


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
        self.source = MemorySource(
            fleet, store, clock=lambda: self.now_s, latency_quantile=self.config.latency_quantile
        )
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


@dataclass
class KedaQueuePolicy(Policy):
    keda: Keda | None = None

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        super().attach(fleet, store)
        s = self.settings
        self.threshold = _float(s, "threshold", self.name)
        if self.threshold <= 0:
            raise PolicyError("keda-queue: setting threshold must be > 0")
        self.activation = _float(s, "activation_threshold", self.name)
        self.keda = _keda_from(s, self.name, self.sim.max_replicas)
        self.initial_replicas = max(1, self.keda.min_replica_count)

    def _value(self) -> float:
        assert self.store is not None
        last = self.store.last
        # sum(vllm:num_requests_waiting): empty at 0 pods, which ignoreNullValues turns into 0.
        return float(last.waiting.sum()) if last is not None and len(last.pods) else 0.0

    def tick(self, k: int, t_s: float) -> None:
        assert self.fleet is not None and self.keda is not None
        dt = self.sim.dt_s
        if _due(k, self.keda.polling_s, dt):
            self.keda.check(self.fleet, t_s, self._value() > self.activation)
        if _due(k, self.keda.hpa.sync_s, dt):
            desired = Hpa.external_average_value(self._value(), self.threshold, self.fleet.replicas)
            self.keda.hpa_sync(self.fleet, t_s, desired)


@dataclass
class HpaGpuPolicy(Policy):
    hpa: Hpa | None = None

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        super().attach(fleet, store)
        s = self.settings
        self.target = _float(s, "target_util_percent", self.name)
        if not 0 < self.target <= 100:
            raise PolicyError("hpa-gpu: setting target_util_percent must be in (0, 100]")
        min_r = max(1, int(_float(s, "min_replicas", self.name)))
        self.hpa = Hpa(
            min_r, self.sim.max_replicas, HpaBehavior(down_window_s=_float(s, "hpa_down_window_s", self.name))
        )
        self.initial_replicas = min_r

    def tick(self, k: int, t_s: float) -> None:
        assert self.fleet is not None and self.store is not None and self.hpa is not None
        if not _due(k, self.hpa.sync_s, self.sim.dt_s):
            return
        last = self.store.last
        current = self.fleet.replicas
        if last is None or current == 0:
            return
        values = last.gpu_util_percent
        missing = max(0, current - len(values))
        desired = Hpa.pods_average_value(values, self.target, current, missing)
        new = self.hpa.normalize(desired, current, t_s)
        if new != current:
            self.fleet.scale_to(new, t_s)
            self.hpa.record(t_s, new - current)


@dataclass
class KpaPolicy(Policy):
    kpa: Kpa | None = None

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        super().attach(fleet, store)
        s = self.settings
        target = float(s["target"]) if s["target"] else float(self.sim.profile.target_concurrency)
        self.kpa = Kpa(
            target_per_pod=target,
            max_replicas=self.sim.max_replicas,
            min_replicas=int(_float(s, "min_replicas", self.name)),
            target_utilization=_float(s, "target_utilization", self.name),
        )

    def tick(self, k: int, t_s: float) -> None:
        assert self.fleet is not None and self.kpa is not None
        dt = self.sim.dt_s
        if _due(k, 1.0, dt):
            self.kpa.observe(t_s, self.fleet.average_concurrency(t_s))
        if self.fleet.replicas == 0 and len(self.fleet.gateway):
            self.kpa.poke(self.fleet, t_s)
        if _due(k, self.kpa.tick_s, dt):
            self.kpa.tick(self.fleet, t_s)


@dataclass
class StaticPolicy(Policy):
    def tick(self, k: int, t_s: float) -> None:
        return


def static_peak_replicas(
    trace: Trace, p: HardwareProfile, bin_s: float = 60.0, utilisation: float = 0.7
) -> int:
    """Replicas for the busiest minute at 70 % utilisation, decoding at the knee batch.

    Worked example (70B): a minute with 400 requests of 1,155 prompt and 211 output tokens needs
    400 x (1,155 x 70 us + 210 x (14 + 0.28 x 32) ms / 32) = 86 s of replica time: 86 / (60 x 0.7) -> 3.
    """
    per_decode = p.decode_step_s(p.target_concurrency) / p.target_concurrency
    if p.backend == "triton":
        work = np.full(len(trace), p.prefill_token_s + p.base_s / p.max_num_seqs)
    else:
        work = trace.input_tokens * p.prefill_token_s + (trace.output_tokens - 1) * per_decode
    bins = (trace.arrival_s // bin_s).astype(np.int64)
    per_bin = np.bincount(bins, weights=work)
    return max(1, math.ceil(float(per_bin.max()) / (bin_s * utilisation)))


def make_policy(
    name: str,
    sim: SimSettings,
    trace: Trace,
    given: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Policy:
    """Build a policy by name with its settings (defaults in DEFAULTS; unknown keys are refused)."""
    settings = merged_settings(name, given or {})
    for key, value in settings.items():  # every setting is a number (or empty: derived from the profile)
        if value != "":
            _float(settings, key, name)
    if name == "scaler":
        return ScalerPolicy(name, settings, sim, metadata=scaler_metadata(sim, metadata))
    if metadata:
        raise PolicyError(f"--metadata applies to the scaler policy only, not {name!r}")
    if name == "keda-queue":
        return KedaQueuePolicy(name, settings, sim)
    if name == "hpa-gpu":
        return HpaGpuPolicy(name, settings, sim)
    if name == "kpa":
        return KpaPolicy(name, settings, sim)
    if not 0 < float(settings["target_attainment"]) <= 1:
        raise PolicyError("static-peak: setting target_attainment must be in (0, 1]")
    n = (
        int(_float(settings, "replicas", name))
        if settings["replicas"]
        else static_peak_replicas(trace, sim.profile)
    )
    if n < 1:
        raise PolicyError("static-peak: setting replicas must be >= 1")
    return StaticPolicy(name, settings, sim, initial_replicas=min(n, sim.max_replicas))


# -- the oracle ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleBound:
    gpu_hours: float
    busy_bound_s: float
    binned_bound_s: float
    bin_s: float
    replicas_per_bin: np.ndarray  # the binned bound as replicas, per bin (for plots)


def oracle_bound(trace: Trace, p: HardwareProfile, ttft_slo_s: float, grid_s: float = 0.1) -> OracleBound:
    """A lower bound on the GPU-hours of ANY policy that serves every request of the trace within the TTFT
    SLO, even with perfect knowledge of the future and free, instant cold starts. It is the larger of two
    bounds, each of which such a policy's replica-time must exceed under the replica model:

    1. Work: every prompt token costs ``prefill_token_s`` and every later output token at least
       ``per_seq_s + base_s / max_num_seqs`` (the cost per token of the largest batch), so the sum of busy
       time is at least that total, whatever the batching.
    2. Per time bin (2, 5, 10, 60 or 300 s, each longer than the SLO; the best is kept): in bin k,
       replica-time is at least (a) the time some request is surely in service: its first token comes by
       arrival + SLO at the latest and decoding then runs every iteration until done, so a replica exists
       from arrival + SLO until arrival + its fastest possible service (prompt alone + one decode step per
       token at batch 1); and (b) the prefill work of the requests that arrive in the bin early enough that
       their TTFT SLO also ends inside it (their prompts must be done by replicas present in this bin, each
       prefilling at most 1 / prefill_token_s tokens per second).

    Loading time is not counted at all, so no real policy (which pays cold starts) can reach it; it is a
    bound, not a schedule, and its slack is the price of integer replicas, batching below the maximum and
    cold starts. A policy that misses the SLO for some requests is bound by (1) only.
    """
    a = trace.arrival_s
    if p.backend == "triton":
        inp = np.ones(len(trace))
        out = np.ones(len(trace))
    else:
        inp = trace.input_tokens.astype(np.float64)
        out = trace.output_tokens.astype(np.float64)
    busy = float(
        (inp * p.prefill_token_s).sum() + ((out - 1) * (p.per_seq_s + p.base_s / p.max_num_seqs)).sum()
    )
    prefill_iters = np.ceil(inp / p.max_num_batched_tokens)
    service = prefill_iters * p.base_s + inp * p.prefill_token_s + (out - 1) * p.decode_step_s(1)
    horizon = float(a.max() + service.max()) + 1.0
    cells = math.ceil(horizon / grid_s) + 2
    diff = np.zeros(cells + 1)
    # Only whole cells inside an interval count: rounding inwards keeps it a lower bound.
    start = np.ceil((a + ttft_slo_s) / grid_s).astype(np.int64)
    end = np.floor((a + service) / grid_s).astype(np.int64)
    ok = end > start
    np.add.at(diff, start[ok], 1)
    np.add.at(diff, end[ok], -1)
    covered = (np.cumsum(diff)[:cells] > 0).astype(np.float64) * grid_s
    best, best_bin, best_curve = 0.0, 60.0, np.zeros(1)
    for bin_s in (2.0, 5.0, 10.0, 60.0, 300.0):
        if bin_s <= ttft_slo_s:
            continue  # (b) needs the SLO to end inside the bin
        nb = math.ceil(horizon / bin_s) + 1
        cell_bin = (np.arange(cells) * grid_s // bin_s).astype(np.int64)
        presence = np.bincount(cell_bin, weights=covered, minlength=nb)[:nb]
        k = (a // bin_s).astype(np.int64)
        inside = a + ttft_slo_s <= (k + 1) * bin_s
        prefill = np.bincount(k[inside], weights=inp[inside] * p.prefill_token_s, minlength=nb)[:nb]
        per_bin = np.maximum(presence, prefill)
        total = float(per_bin.sum())
        if total > best or (bin_s == 60.0 and best == 0.0):
            best, best_bin, best_curve = total, bin_s, per_bin / bin_s
    bound_s = max(busy, best)
    return OracleBound(bound_s * p.gpus_per_replica / 3600.0, busy, best, best_bin, best_curve)
