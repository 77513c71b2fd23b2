"""MemorySource: the simulator's Prometheus and Kubernetes API, feeding the real core.

It runs the production query plans (``plan_queries``, ``plan_history``) against the simulated Prometheus
(``tsdb``: the pods' raw samples, each as old as its scrape), and hands the results to the production
reductions (``reduce_signals``, ``reduce_history``, and through them the one ``histogram_quantile``), with
the production windows and steps: the 1m rate window, 1 h of history at 15 s aligned to the step
(``history_range``), the activation query's last minute at 5 s. Nothing here computes a signal.

What it does differently from ``PrometheusSource``: the Deployment's pods come from the fleet the way the
Kubernetes reader sees them (the live pods its ReplicaSet owns, counted by the production ``count_pods``),
and the activation query can only be the gateway's (it evaluates specs, not text). kube-state-metrics is
not simulated: the simulator plays the Kubernetes API, which production prefers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from scaler.core.signals import Measure
from scaler.core.state import LatencyWindow, Observation, ReplicaSource, Series, State
from scaler.core.target import Target
from scaler.sources.membership import PodFacts, PodStates, count_pods, generated_prefix
from scaler.sources.prometheus import ACTIVATION_WINDOW_S, HISTORY_S, HISTORY_STEP_S
from scaler.sources.query import (
    QueryPlan,
    RangeSample,
    Sample,
    history_key,
    history_range,
    index_history,
    plan_history,
    plan_queries,
    reduce_history,
    reduce_signals,
    shape_of,
)
from scaler.sources.spec import Matcher, Op, QuerySpec, duration_s, render
from simulations.exposition import GATEWAY_METRIC, NAMESPACE, REPLICASET, pod_name
from simulations.fleet import LOADING, READY, Fleet
from simulations.tsdb import ScrapeStore

RATE_WINDOW = "1m"  # PrometheusSource's default rate window (--rate-window)
# What activationQuery would be in a cluster: the gateway's pending requests in the ScaledObject's namespace.
GATEWAY_SPEC = QuerySpec(Op.SUM, (GATEWAY_METRIC,), (Matcher("namespace", "=", NAMESPACE),))
GATEWAY_QUERY = render(GATEWAY_SPEC)  # sum(gateway_pending_requests{namespace="sim"})
# The production reductions, called as they are (tests/simulations/test_source.py checks these are them).
REDUCE_SIGNALS = reduce_signals
REDUCE_HISTORY = reduce_history


class SimulationError(ValueError):
    """Something the simulated Prometheus cannot answer; the message says what it can."""


@dataclass
class MemorySource:
    """The ``scaler.sources.source.Source`` the simulator gives the real scaler."""

    fleet: Fleet
    store: ScrapeStore
    clock: Callable[[], float]  # simulated time
    rate_window: str = RATE_WINDOW
    history_s: float = HISTORY_S
    history_step_s: float = HISTORY_STEP_S
    reductions: int = 0  # calls of the production reductions (reduce_signals + reduce_history)
    _plans: dict[tuple[str, str], tuple[QueryPlan, QueryPlan]] = field(default_factory=dict)
    _history: dict[
        tuple[str, str, float, frozenset[str]], tuple[dict[Measure, Series], tuple[LatencyWindow, ...]]
    ] = field(default_factory=dict)

    def collect(self, targets: Sequence[Target]) -> Mapping[tuple[str, str, str], Observation]:
        now = float(self.clock())
        return {(t.namespace, t.name, t.config.deployment): self.observe(t, now) for t in targets}

    def plans(self, target: Target) -> tuple[QueryPlan, QueryPlan]:
        """The production plans for one target: the refresh's instant queries and the history's range ones."""
        key = (target.namespace, target.name)
        if key not in self._plans:
            self._plans[key] = (
                plan_queries([target], self.rate_window),
                plan_history([target], self.rate_window),
            )
        return self._plans[key]

    def instant_results(self, target: Target, now: float) -> dict[str, list[Sample]]:
        plan, _ = self.plans(target)
        return {q.kind: self.store.query(_spec(q.kind, q.spec), now) for q in plan.queries}

    def history_results(
        self, target: Target, start_s: float, end_s: float
    ) -> Mapping[str, Sequence[RangeSample]]:
        """The history queries over [start_s, end_s], indexed as ``PrometheusSource`` does: this target's
        Deployment's entry of ``index_history``."""
        _, plan = self.plans(target)
        step = self.history_step_s
        results = {
            q.kind: self.store.query_range(_spec(q.kind, q.spec), start_s, end_s, q.step_s or step)
            for q in plan.queries
        }
        return index_history(results).get(history_key(target), {})

    def observe(self, target: Target, now: float) -> Observation:
        states = self.pod_states(target, now)
        self.reductions += 1
        instant = self.instant_results(target, now)
        signals = REDUCE_SIGNALS(target, instant, states, window_s=duration_s(self.rate_window))
        start_s, end_s = history_range(now, self.history_s, self.history_step_s)
        hkey = (target.namespace, target.config.deployment, end_s, states.prefixes)
        if hkey not in self._history:
            # Like PrometheusSource: history is read and reduced once per history step, with the shape
            # (the Triton backend) the refresh's results show.
            self.reductions += 1
            mine = self.history_results(target, start_s, end_s)
            shape = shape_of(target, instant, states)
            self._history = {hkey: REDUCE_HISTORY(target, mine, states.prefixes, shape)}
        measured, windows = self._history[hkey]
        # As PrometheusSource's _with_pod_counts: replica counts from the pods, not from their metrics.
        signals = replace(signals, current_replicas=states.total, ready_replicas=states.ready)
        state = State(
            history=measured,
            latency_windows=windows,
            warming_replicas=len(states.warming_ages_s),
            warming_ages_s=states.warming_ages_s,
            cold_start_samples_s=states.cold_starts_s,
            replica_source=ReplicaSource.SIMULATION,
            notes=dict(states.notes),
            rate_window_s=duration_s(self.rate_window),
        )
        if target.config.activation_query is not None:
            value, series = self.activation(target.config.activation_query, now)
            state = replace(state, activation_value=value, activation_history=series)
        return Observation(signals, state)

    def activation(self, query: str, now: float) -> tuple[float | None, Series | None]:
        """The activation query now and over its last minute at 5 s, as ``PrometheusSource`` reads it."""
        if query != GATEWAY_QUERY:
            raise SimulationError(
                f"the simulator answers activationQuery only with its gateway's queue ({GATEWAY_QUERY}), "
                f"not {query[:80]!r}"
            )
        now_samples = self.store.query(GATEWAY_SPEC, now)
        value = now_samples[0].value if now_samples else None
        step_s = min(self.history_step_s, 5.0)
        ranged = self.store.query_range(GATEWAY_SPEC, now - ACTIVATION_WINDOW_S, now, step_s)
        series = Series(ranged[0].times_s, ranged[0].values) if ranged and ranged[0].times_s else None
        return value, series

    def pod_states(self, target: Target, now: float) -> PodStates:
        """The Deployment's pods as the Kubernetes reader sees them (``kube._Namespace.summarise``): the live
        pods of its one ReplicaSet (draining ones are terminating, so left out), spec.replicas as KEDA and
        the HPA set it, counted by the production ``count_pods``."""
        f = self.fleet
        live = np.flatnonzero((f.status == LOADING) | (f.status == READY))
        facts = [
            PodFacts(
                name=pod_name(int(f.pod_id[i])),
                created_s=float(f.created_at[i]),
                ready=bool(f.status[i] == READY),
                ready_at_s=float(f.ready_at[i]) if f.status[i] == READY else None,
            )
            for i in live
        ]
        prefixes = frozenset({generated_prefix(REPLICASET)})
        return count_pods(facts, f.replicas, prefixes, now, target.config.cold_start_s)


def _spec(kind: str, spec: QuerySpec | None) -> QuerySpec:
    if spec is None:
        raise SimulationError(f"query {kind} has no QuerySpec: the simulated Prometheus evaluates specs only")
    return spec
