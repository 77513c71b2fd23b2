"""Signals: what was measured for one ScaledObject at one moment, the input of ``decide``.

``None`` always means *missing* (no series, stale, or unreadable), never zero: a missing signal can
hold a fleet where it is, it can never shrink it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SignalName(StrEnum):
    QUEUE = "queue"
    TOKENS = "tokens"
    GPU = "gpu"
    LATENCY = "latency"


@dataclass(frozen=True)
class Signals:
    """Measured inputs for one ScaledObject.

    ``current_replicas`` counts pods that exist for the Deployment (Ready or not); ``ready_replicas``
    those that serve (report metrics). Both ``None`` when unknown.
    """

    current_replicas: int | None
    ready_replicas: int | None
    queue_requests: float | None = None
    tokens_per_s: float | None = None
    gpu_util_percent: float | None = None
    latency_s: float | None = None
    # Human-readable qualifiers per signal, e.g. {"latency": "mean, no summary"}; shown in explain.
    notes: dict[str, str] = field(default_factory=dict)
    # Pods that exist but whose metrics could not be read (scrape failing): totals are lower bounds.
    unreadable_pods: int = 0
    # Signals whose series exist but saw no events in the window (latency with no requests): these have
    # no opinion, which is different from missing.
    no_traffic: frozenset[SignalName] = frozenset()
    # Signals whose series have been absent for longer than the staleness bound while the pods are there
    # (dcgm-exporter without pod mapping, say): a configuration problem, not a gap. While another signal
    # is measured they hold nothing (see decide); alone they stay missing.
    unconfigured: frozenset[SignalName] = frozenset()

    def value_of(self, name: SignalName) -> float | None:
        return {
            SignalName.QUEUE: self.queue_requests,
            SignalName.TOKENS: self.tokens_per_s,
            SignalName.GPU: self.gpu_util_percent,
            SignalName.LATENCY: self.latency_s,
        }[name]
