"""State: what ``decide`` knows beyond the current signals, and the ``Observation`` an edge hands it.

Every field is derived by an edge from Prometheus history, the Kubernetes API and the clock, never from
memory of past calls, so two scaler replicas (or the simulator) given the same world compute the same
State and therefore the same Decision. Defaults mean "not known": the core then falls back to priors
(``coldStartSeconds``) and to the cautious choice (hold, do not shrink).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from scaler.core.signals import Measure, Signals


class ReplicaSource(StrEnum):
    """Where the replica counts (and warming replicas) came from."""

    KUBERNETES = "kubernetes"  # Deployment and pod objects from the Kubernetes API
    KUBE_STATE_METRICS = "kube-state-metrics"  # kube_deployment_* / kube_pod_* series in Prometheus
    METRICS = "metrics"  # only what the pods' own metrics show: warming pods are invisible
    SIMULATION = "simulation"  # the simulator's fleet


def pack_floats(xs: Iterable[float]) -> array[float]:
    """``xs`` as packed doubles (an existing ``array('d')`` is shared, not copied).

    History is most of what the scaler holds: 1 h at a 15 s step is 240 points per series, a few series
    per Deployment. A tuple of floats costs 32 bytes a value (an 8-byte slot and a 24-byte float
    object), packed doubles 8: for 2,000 Deployments x 4 series x 240 points x (time + value) that is
    117 MiB as tuples, 29 MiB packed."""
    if isinstance(xs, array) and xs.typecode == "d":
        return xs
    # through a list, not frombytes(): frombytes over-allocates by an eighth (2,144 bytes for 240 values
    # against 2,000 built from a list)
    return array("d", np.asarray(xs, dtype=np.float64).tolist())


@dataclass(frozen=True)
class Series:
    """A sampled time series, oldest first, on the step Prometheus returned (NaN-free).

    Times and values are stored as packed doubles (``pack_floats``); treat them as read-only."""

    times_s: Sequence[float] = ()
    values: Sequence[float] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "times_s", pack_floats(self.times_s))
        object.__setattr__(self, "values", pack_floats(self.values))
        if len(self.times_s) != len(self.values):
            raise ValueError("Series needs as many times as values")

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class LatencyWindow:
    """The latency histogram of one past window (the configured latency metric, summed over the
    Deployment's pods): ``requests`` seen, the ``ready`` replicas that served them, and the cumulative
    counts at each bucket bound (``+Inf`` last). The headroom floor reads how many of these requests a
    different number of replicas would have served within the SLO."""

    end_s: float
    ready: float
    requests: float
    bounds_s: tuple[float, ...]
    cumulative: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.bounds_s) != len(self.cumulative):
            raise ValueError("LatencyWindow needs one cumulative count per bound")


@dataclass(frozen=True)
class State:
    """Inputs of ``decide`` that are not the current signals.

    ``warming_replicas``: pods that exist but are not Ready yet (capacity that is coming); ``None`` when
    nothing could tell (then ``replica_source`` says why). ``warming_ages_s``: how long each has existed.
    ``cold_start_samples_s``: recent clean pod creation -> Ready durations of this Deployment, any order.
    ``history``: recent values of each measure, oldest first (``Measure``): demand for the projection,
    the engine's costs for the capacity model, Ready replicas and demand for the keep-warm economics.
    ``latency_windows``: past windows of the latency histogram, for the headroom floor.
    ``activation_value``: the ``activationQuery`` value now (``None``: not configured or no data).
    ``activation_history``: that query's values over the last minute, for the arrival rate while at zero.
    """

    warming_replicas: int | None = None
    warming_ages_s: tuple[float, ...] = ()
    replica_source: ReplicaSource = ReplicaSource.METRICS
    cold_start_samples_s: tuple[float, ...] = ()
    history: Mapping[Measure, Series] = field(default_factory=dict)
    latency_windows: tuple[LatencyWindow, ...] = ()
    activation_value: float | None = None
    activation_history: Series | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    # The window of the rates in ``history`` (served requests, tokens): a rate still reads demand up to
    # this long after the last request. None: unknown (then idle time is counted from the rate alone).
    rate_window_s: float | None = None


@dataclass(frozen=True)
class Observation:
    """What a source read for one ScaledObject at one moment: the input of ``decide`` minus config/time."""

    signals: Signals
    state: State = field(default_factory=State)
    # The source cannot answer for this ScaledObject (its target is a StatefulSet, or no Deployment of that
    # name exists): no decision is made, and the message is the answer (UNAVAILABLE over gRPC).
    error: str | None = None
