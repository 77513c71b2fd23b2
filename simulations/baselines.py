"""The baselines: what a platform team would run instead of this scaler, each acting through the modelled
control plane (see ``simulations.policy`` for what each models)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulations.controlplane import Hpa, HpaBehavior, Keda, Kpa, ScrapeStore
from simulations.fleet import Fleet
from simulations.policy import Policy, PolicyError, _due, _float, _keda_from
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
