"""MemorySource: the simulator's stand-in for Prometheus and the Kubernetes API, feeding the real core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaler.core.signals import SignalName, Signals
from scaler.core.state import Observation, ReplicaSource, Series, State
from scaler.core.target import Target
from scaler.sources.profile import VLLM_TTFT_BUCKETS_S
from simulations.controlplane import ScrapeStore
from simulations.fleet import Fleet, Scrape

HISTORY_S = 600.0  # demand history handed to decide(): the last 10 min at the scrape step
RATE_WINDOW_S = 60.0  # the scaler's rate window ("1m")


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
    """The ``scaler.sources.source.Source`` the simulator gives the real scaler: it reads the scrape store
    (what Prometheus holds) and the fleet (what the Kubernetes API says), as the production sources do.

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
