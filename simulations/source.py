"""MemorySource: the simulator's stand-in for Prometheus and the Kubernetes API, feeding the real core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaler.core.config import LatencyMetric, ScalerConfig
from scaler.core.signals import Measure, SignalName, Signals
from scaler.core.state import LatencyWindow, Observation, ReplicaSource, Series, State
from scaler.core.target import Target
from scaler.sources.profile import VLLM_E2E_BUCKETS_S, VLLM_TTFT_BUCKETS_S
from scaler.sources.query import histogram_quantile
from simulations.controlplane import ScrapeStore
from simulations.fleet import Fleet, Scrape

HISTORY_S = 3600.0  # the production source's history (scaler.sources.prometheus.HISTORY_S)
RATE_WINDOW_S = 60.0  # the scaler's rate window ("1m")
LATENCY_WINDOW_S = 60.0


@dataclass
class _Point:
    """What the production queries would return for the Deployment at one scrape."""

    t_s: float
    signals: Signals
    measures: dict[Measure, float]


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
    _points: dict[float, _Point] = field(default_factory=dict)
    _config: ScalerConfig | None = None
    _cache_t: float | None = None
    _cache: tuple[_Point, dict[Measure, Series], tuple[LatencyWindow, ...]] | None = None

    def collect(self, targets: Sequence[Target]) -> Mapping[tuple[str, str, str], Observation]:
        now = float(self.clock())
        if targets and self._config is None:
            self._config = targets[0].config
        obs = self.observe(now)
        return {(t.namespace, t.name, t.config.deployment): obs for t in targets}

    # -- one scrape as the production reductions would see it ----------------------------------------------
    def _latency_buckets(self, s: Scrape) -> tuple[tuple[float, ...], np.ndarray]:
        cfg = self._config
        if cfg is not None and cfg.latency_metric == LatencyMetric.E2E:
            return (*VLLM_E2E_BUCKETS_S, np.inf), s.e2e_hist.sum(axis=0) if len(s.pods) else np.zeros(0)
        return (*VLLM_TTFT_BUCKETS_S, np.inf), s.fleet_ttft_hist

    def _point(self, s: Scrape) -> _Point:
        if s.t_s in self._points:
            return self._points[s.t_s]
        reporting = len(s.pods)
        old = _window_start(self.store, s.t_s - RATE_WINDOW_S)
        waiting = float(s.waiting.sum()) if reporting else None
        running = float(s.running.sum()) if reporting else None
        queue = waiting + running if waiting is not None and running is not None else None
        rates: dict[str, float] = {}
        latency = attained = seen = None
        no_traffic: frozenset[SignalName] = frozenset()
        if reporting and old is not None and old.t_s < s.t_s:
            span = s.t_s - old.t_s
            rates = {
                "gen": (s.fleet_gen_total - old.fleet_gen_total) / span,
                "prompt": (s.fleet_prompt_total - old.fleet_prompt_total) / span,
                "done": (s.fleet_done_total - old.fleet_done_total) / span,
            }
            itl_n = s.fleet_itl_count - old.fleet_itl_count
            if itl_n > 0:
                rates["step"] = (s.fleet_itl_sum_s - old.fleet_itl_sum_s) / itl_n
            bounds, now_hist = self._latency_buckets(s)
            _, old_hist = self._latency_buckets(old)
            if len(now_hist) and len(old_hist) == len(now_hist):
                inc = now_hist - old_hist
                latency = histogram_quantile(self.latency_quantile, dict(zip(bounds, inc, strict=True)))
                cfg = self._config
                if inc[-1] > 0 and cfg is not None and cfg.latency_slo_s is not None:
                    seen = float(inc[-1])
                    attained = _fraction_within(bounds, inc, cfg.latency_slo_s)
            if latency is None:
                no_traffic = frozenset({SignalName.LATENCY})
        gpu = float(s.gpu_util_percent.mean()) if len(s.gpu_pods) else None
        tokens = rates["gen"] + rates["prompt"] if rates else None
        signals = Signals(
            current_replicas=None,
            ready_replicas=reporting,
            queue_requests=queue,
            tokens_per_s=tokens,
            gpu_util_percent=gpu,
            latency_s=latency,
            running_requests=running,
            waiting_requests=waiting,
            requests_per_s=rates.get("done"),
            prompt_tokens_per_s=rates.get("prompt"),
            generation_tokens_per_s=rates.get("gen"),
            step_s=rates.get("step"),
            latency_attainment=attained,
            latency_requests=seen,
            no_traffic=no_traffic,
        )
        measures: dict[Measure, float] = {
            Measure.READY: float(reporting),
            Measure.REPLICAS: float(s.replicas),
            Measure.GATEWAY: float(s.gateway_queue),
        }
        for m, v in (
            (Measure.QUEUE, queue),
            (Measure.RUNNING, running),
            (Measure.WAITING, waiting),
            (Measure.TOKENS, tokens),
            (Measure.REQUESTS, rates.get("done")),
            (Measure.PROMPT_TOKENS, rates.get("prompt")),
            (Measure.GENERATION_TOKENS, rates.get("gen")),
            (Measure.STEP_S, rates.get("step")),
        ):
            if v is not None:
                measures[m] = float(v)
        point = _Point(s.t_s, signals, measures)
        self._points[s.t_s] = point
        for t in [t for t in self._points if t < s.t_s - HISTORY_S - 120]:
            del self._points[t]
        return point

    def _windows(self, last: Scrape) -> tuple[LatencyWindow, ...]:
        """One window per minute of the history: the latency histogram's increase over it, and the mean
        Ready replicas (what ``increase(...[1m])`` and ``avg_over_time`` at a 60 s step would give)."""
        out = []
        end = last.t_s - last.t_s % LATENCY_WINDOW_S
        scrapes = [s for s in self.store.scrapes if last.t_s - HISTORY_S - LATENCY_WINDOW_S <= s.t_s <= end]
        by_t = {s.t_s: s for s in scrapes}
        t = end
        while t - LATENCY_WINDOW_S >= last.t_s - HISTORY_S:
            a, b = by_t.get(t - LATENCY_WINDOW_S), by_t.get(t)
            if a is not None and b is not None and len(b.pods):
                bounds, hb = self._latency_buckets(b)
                _, ha = self._latency_buckets(a)
                if len(hb) and len(ha) == len(hb):
                    inc = hb - ha
                    if inc[-1] > 0:
                        inside = [s for s in scrapes if t - LATENCY_WINDOW_S < s.t_s <= t]
                        ready = float(np.mean([len(s.pods) for s in inside]))
                        out.append(
                            LatencyWindow(
                                t, ready, float(inc[-1]), tuple(bounds), tuple(float(x) for x in inc)
                            )
                        )
            t -= LATENCY_WINDOW_S
        return tuple(reversed(out))

    def observe(self, now: float) -> Observation:
        last = self.store.at_or_before(now)
        if last is None:
            point = _Point(now, Signals(current_replicas=None, ready_replicas=None), {})
            history: dict[Measure, Series] = {}
            windows: tuple[LatencyWindow, ...] = ()
        elif self._cache_t == last.t_s and self._cache is not None:
            point, history, windows = self._cache
        else:
            point = self._point(last)
            recent = [self._point(s) for s in self.store.scrapes if last.t_s - HISTORY_S < s.t_s <= last.t_s]
            history = {}
            for m in Measure:
                kept = [(p.t_s, p.measures[m]) for p in recent if m in p.measures]
                if kept:
                    history[m] = Series(tuple(t for t, _ in kept), tuple(v for _, v in kept))
            windows = self._windows(last)
            self._cache_t, self._cache = last.t_s, (point, history, windows)
        f = self.fleet
        ages = tuple(float(now - f.created_at[i]) for i in np.flatnonzero(f.status == 1))
        gateway_recent = [
            s for s in self.store.scrapes if last is not None and last.t_s - 60.0 <= s.t_s <= last.t_s
        ]
        s = point.signals
        signals = Signals(
            current_replicas=f.replicas,
            ready_replicas=s.ready_replicas,
            queue_requests=s.queue_requests,
            tokens_per_s=s.tokens_per_s,
            gpu_util_percent=s.gpu_util_percent,
            latency_s=s.latency_s,
            running_requests=s.running_requests,
            waiting_requests=s.waiting_requests,
            requests_per_s=s.requests_per_s,
            prompt_tokens_per_s=s.prompt_tokens_per_s,
            generation_tokens_per_s=s.generation_tokens_per_s,
            step_s=s.step_s,
            latency_attainment=s.latency_attainment,
            latency_requests=s.latency_requests,
            no_traffic=s.no_traffic,
        )
        state = State(
            warming_replicas=f.loading,
            warming_ages_s=ages,
            replica_source=ReplicaSource.SIMULATION,
            cold_start_samples_s=tuple(f.cold_start_samples_s[-20:]),
            history=history,
            latency_windows=windows,
            activation_value=float(last.gateway_queue) if last is not None else None,
            activation_history=Series(
                tuple(x.t_s for x in gateway_recent), tuple(float(x.gateway_queue) for x in gateway_recent)
            ),
        )
        return Observation(signals, state)


def _fraction_within(bounds: Sequence[float], counts: np.ndarray, x_s: float) -> float:
    """Fraction of a histogram's observations at most ``x_s`` (linear inside the bucket)."""
    total = float(counts[-1])
    finite = [b for b in bounds if np.isfinite(b)]
    xs = np.concatenate([[0.0], finite])
    ys = np.concatenate([[0.0], counts[: len(finite)]]) / total
    if x_s >= xs[-1]:
        return float(ys[-1])
    return float(np.interp(x_s, xs, ys))


def _window_start(store: ScrapeStore, t_s: float) -> Scrape | None:
    for s in store.scrapes:
        if s.t_s >= t_s - 1e-9:
            return s
    return None
