"""The baselines: what a platform team would run instead of this scaler, each acting through the modelled
control plane (see ``simulations.policy`` for what each models)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulations.controlplane import Hpa, HpaBehavior, Keda, Kpa, ScrapeStore
from simulations.fleet import LOADING, READY, Fleet
from simulations.oracle import OracleBound
from simulations.policy import TARGET_UTILISATION, Policy, PolicyError, SimSettings, _due, _float, _keda_from
from simulations.profile import HardwareProfile
from simulations.trace import Trace


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
class KedaTunedPolicy(Policy):
    """KEDA's Prometheus scaler as a competent team sets it up (see ``simulations.policy``): requests in
    flight per replica, and the gateway's pending requests so that it wakes from zero."""

    keda: Keda | None = None

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        super().attach(fleet, store)
        s = self.settings
        p = self.sim.profile
        # The same 70 % of the knee the scaler's queue target uses: 32 x 0.7 -> 22 for the 70B profile.
        self.threshold = (
            _float(s, "threshold", self.name)
            if s["threshold"]
            else math.floor(p.target_concurrency * TARGET_UTILISATION)
        )
        if self.threshold <= 0:
            raise PolicyError("keda-tuned: setting threshold must be > 0")
        self.keda = _keda_from(s, self.name, self.sim.max_replicas)
        self.initial_replicas = max(1, self.keda.min_replica_count)

    def _values(self) -> tuple[float, float]:
        """(sum of running + waiting over the pods, the gateway's pending requests), from the last scrape."""
        assert self.store is not None
        last = self.store.last
        if last is None:
            return 0.0, 0.0
        in_flight = float(last.running.sum() + last.waiting.sum()) if len(last.pods) else 0.0
        return in_flight, float(last.gateway_queue)

    def tick(self, k: int, t_s: float) -> None:
        assert self.fleet is not None and self.keda is not None
        dt = self.sim.dt_s
        if _due(k, self.keda.polling_s, dt):
            in_flight, pending = self._values()
            self.keda.check(self.fleet, t_s, in_flight > 0 or pending > 0)  # activationThreshold 0 on both
        if _due(k, self.keda.hpa.sync_s, dt):
            in_flight, pending = self._values()
            current = self.fleet.replicas
            # The HPA computes a proposal per metric (each with its tolerance) and takes the largest.
            desired = max(
                Hpa.external_average_value(in_flight, self.threshold, current),
                Hpa.external_average_value(pending, self.threshold, current),
            )
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
        fleet = self.fleet
        current = fleet.replicas
        if last is None or current == 0:
            return
        # The HPA lists the Deployment's pods from the API and drops those being deleted (draining here);
        # a listed pod with no sample yet (created after the scrape) is "missing" (replica_calculator.go).
        listed = fleet.pod_id[(fleet.status == LOADING) | (fleet.status == READY)]
        sampled = np.isin(last.gpu_pods, listed)
        values = last.gpu_util_percent[sampled]
        missing = len(listed) - int(np.count_nonzero(sampled))
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
    if p.per_item:
        work = np.full(len(trace), p.prefill_token_s + p.base_s / p.max_num_seqs)
    else:
        work = trace.input_tokens * p.prefill_token_s + (trace.output_tokens - 1) * per_decode
    bins = (trace.arrival_s // bin_s).astype(np.int64)
    per_bin = np.bincount(bins, weights=work)
    return max(1, math.ceil(float(per_bin.max()) / (bin_s * utilisation)))


@dataclass
class HindsightPolicy(Policy):
    """Replays a replica schedule known in advance by setting the Deployment's replicas itself, every step
    (no KEDA, no HPA: a planner with the future in hand has nothing to poll)."""

    deployment: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def tick(self, k: int, t_s: float) -> None:
        assert self.fleet is not None
        if not len(self.deployment):
            return
        # Before t = 0 (the warm-up) the planner holds its opening size.
        want = int(self.deployment[min(max(k, 0), len(self.deployment) - 1)])
        if want != self.fleet.replicas:
            self.fleet.scale_to(want, t_s)


def hindsight_schedule(bound: OracleBound, sim: SimSettings, scale: float) -> np.ndarray:
    """Deployment replicas per step for the bound's schedule times ``scale`` (1.1: a 10 % margin).

    Ready replicas needed at step k: ceil(n_k x scale), n_k the LP's. Each start is issued a longest
    cold start (cold_start_s x (1 + jitter)) ahead so it is Ready in time whatever it draws: the Deployment at
    step k holds the most any step in [k, k + lead] needs, and a replica goes once no step within a cold start
    needs it. Worked example: 60 s +/-10 %, dt 0.25 s: lead 66 s, 264 steps; n = 1.2 at scale 1.1 -> 2.
    """
    need = np.ceil(np.clip(bound.replicas * scale, 0.0, None) - 1e-6).astype(np.int64)
    lead = math.ceil(sim.cold_start_s * (1.0 + sim.cold_start_jitter) / sim.dt_s)
    padded = np.concatenate([need, np.zeros(lead, dtype=np.int64)])
    ahead = np.lib.stride_tricks.sliding_window_view(padded, lead + 1).max(axis=1)[: len(need)]
    out: np.ndarray = np.minimum(ahead, sim.max_replicas)
    return out
