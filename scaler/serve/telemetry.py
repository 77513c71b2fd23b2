"""The scaler's own Prometheus metrics (served on ``--metrics-port``).

Every metric takes its ``registry``, so tests use a fresh ``CollectorRegistry``. Labels are bounded:
namespace, scaledobject, deployment, signal (4 values), reason (a handful), query kind, RPC method.
"""

from __future__ import annotations

import contextlib
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry

from scaler.core.decision import Decision

_SO = ("namespace", "scaledobject", "deployment")
_REPLICA_SOURCES = ("kubernetes", "kube-state-metrics", "metrics", "simulation")
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _FastLabels:
    """``labels()`` that returns an existing child without prometheus_client's checks, ``str()`` of every
    value and lock (a dict read is atomic under the GIL); new children still go through the library.

    One refresh records ~30 series for each of 2,000 ScaledObjects every 2 s: through the library's
    ``labels()`` (and ``remove()`` of series that are not there, which also reads ``os.environ`` twice)
    that was 100-200 ms of every refresh on the GIL, the largest part of the refresh after the queries.
    Every label value here is already a ``str``, so the tuple is the library's own key."""

    _metrics: dict[tuple[str, ...], Any]

    def labels(self, *labelvalues: str) -> Any:
        child = self._metrics.get(labelvalues)
        return child if child is not None else super().labels(*labelvalues)  # type: ignore[misc]

    def has(self, labelvalues: tuple[str, ...]) -> bool:
        return labelvalues in self._metrics


# mypy sees the mixin's narrower labels() and _metrics as incompatible with the library's; they are the
# same calls with str label values, which is all this module passes.
class Gauge(_FastLabels, prometheus_client.Gauge):  # type: ignore[misc]
    pass


class Counter(_FastLabels, prometheus_client.Counter):  # type: ignore[misc]
    pass


class Histogram(_FastLabels, prometheus_client.Histogram):  # type: ignore[misc]
    pass


class Telemetry:
    """All metrics of one scaler process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.desired_replicas = Gauge(
            "llm_scaler_desired_replicas",
            "Replicas the scaler asks for (the value returned to KEDA).",
            _SO,
            registry=registry,
        )
        self.current_replicas = Gauge(
            "llm_scaler_current_replicas",
            "Pods of the Deployment that exist, as the scaler sees them.",
            _SO,
            registry=registry,
        )
        self.ready_replicas = Gauge(
            "llm_scaler_ready_replicas",
            "Pods of the Deployment that serve and report metrics.",
            _SO,
            registry=registry,
        )
        self.active = Gauge(
            "llm_scaler_active", "1 if the scaler reports the ScaledObject active.", _SO, registry=registry
        )
        self.signal_value = Gauge(
            "llm_scaler_signal_value",
            "Measured value of each signal (queue: requests, tokens: per s, gpu: percent, latency: s).",
            (*_SO, "signal"),
            registry=registry,
        )
        self.signal_desired_replicas = Gauge(
            "llm_scaler_signal_desired_replicas",
            "Replicas each signal alone would ask for.",
            (*_SO, "signal"),
            registry=registry,
        )
        self.signal_missing = Gauge(
            "llm_scaler_signal_missing",
            "1 if the signal had no usable data at the last refresh.",
            (*_SO, "signal"),
            registry=registry,
        )
        self.signal_target = Gauge(
            "llm_scaler_signal_target",
            "Each signal's target (queue, tokens: per replica; gpu: percent; latency: the SLO in s).",
            (*_SO, "signal"),
            registry=registry,
        )
        self.decisions = Counter(
            "llm_scaler_decisions",
            "Decisions made, by the reason that won.",
            (*_SO, "reason"),
            registry=registry,
        )
        self.last_refresh = Gauge(
            "llm_scaler_last_refresh_timestamp_seconds",
            "When this ScaledObject's data was last read successfully.",
            _SO,
            registry=registry,
        )
        self.query_duration = Histogram(
            "llm_scaler_prometheus_query_duration_seconds",
            "Duration of Prometheus queries, by query kind.",
            ("query",),
            registry=registry,
        )
        self.query_errors = Counter(
            "llm_scaler_prometheus_query_errors",
            "Failed Prometheus queries, by query kind.",
            ("query",),
            registry=registry,
        )
        self.refresh_duration = Histogram(
            "llm_scaler_refresh_duration_seconds",
            "Duration of one refresh of all ScaledObjects on one Prometheus.",
            registry=registry,
        )
        self.queries_per_refresh = Gauge(
            "llm_scaler_queries_per_refresh",
            "Prometheus queries in the last refresh (all servers).",
            registry=registry,
        )
        self.scaledobjects = Gauge(
            "llm_scaler_scaledobjects", "ScaledObjects the scaler currently tracks.", registry=registry
        )
        self.rpc_duration = Histogram(
            "llm_scaler_rpc_duration_seconds",
            "gRPC handling time by method.",
            ("method",),
            buckets=_RPC_BUCKETS,
            registry=registry,
        )
        self.rpc_errors = Counter(
            "llm_scaler_rpc_errors",
            "gRPC calls answered with an error, by method and status code.",
            ("method", "code"),
            registry=registry,
        )
        self.streams = Gauge("llm_scaler_active_streams", "Open StreamIsActive streams.", registry=registry)
        # Cold start (one story with explain: the same numbers as Decision.details).
        self.warming_replicas = Gauge(
            "llm_scaler_warming_replicas",
            "Pods that exist but are not Ready yet (capacity that is coming).",
            _SO,
            registry=registry,
        )
        self.cold_start_seconds = Gauge(
            "llm_scaler_cold_start_seconds",
            "Cold start used in decisions: p90 of recent pod creation -> Ready, else coldStartSeconds.",
            _SO,
            registry=registry,
        )
        self.cold_start_samples = Gauge(
            "llm_scaler_cold_start_samples",
            "Observed start-ups behind llm_scaler_cold_start_seconds (0: the prior is used).",
            _SO,
            registry=registry,
        )
        self.scale_from_zero = Counter(
            "llm_scaler_scale_from_zero",
            "Refreshes that activated a Deployment at zero replicas (reason from-zero).",
            _SO,
            registry=registry,
        )
        self.forecast_value = Gauge(
            "llm_scaler_forecast_value",
            "Each demand signal forecast one cold start ahead.",
            (*_SO, "signal"),
            registry=registry,
        )
        self.idle_seconds = Gauge(
            "llm_scaler_idle_seconds",
            "Time since demand was last seen, when the Deployment is idle.",
            _SO,
            registry=registry,
        )
        self.replica_source = Gauge(
            "llm_scaler_replica_source_info",
            "Where replica counts and warming pods come from (kubernetes, kube-state-metrics, metrics).",
            (*_SO, "source"),
            registry=registry,
        )

    def observe_query(self, kind: str, seconds: float, error: Exception | None) -> None:
        # The query kind's first two parts ("vllm:queue") keep the label set bounded.
        label = ":".join(kind.split(":")[:2])
        self.query_duration.labels(label).observe(seconds)
        if error is not None:
            self.query_errors.labels(label).inc()

    def record(self, key: tuple[str, str, str], decision: Decision, refreshed_at_s: float) -> None:
        """Publish one decision: the same numbers explain prints."""
        self.desired_replicas.labels(*key).set(decision.desired_replicas)
        self.active.labels(*key).set(1 if decision.active else 0)
        if decision.current_replicas is not None:
            self.current_replicas.labels(*key).set(decision.current_replicas)
        if decision.ready_replicas is not None:
            self.ready_replicas.labels(*key).set(decision.ready_replicas)
        for v in decision.signals:
            name = v.signal.value
            self.signal_missing.labels(*key, name).set(1 if v.status == "missing" else 0)
            self.signal_target.labels(*key, name).set(v.target)
            if v.value is not None:
                self.signal_value.labels(*key, name).set(v.value)
            else:  # missing is not zero, and not the last value either
                self._remove(self.signal_value, (*key, name))
            if v.desired_replicas is not None:
                self.signal_desired_replicas.labels(*key, name).set(v.desired_replicas)
            else:
                self._remove(self.signal_desired_replicas, (*key, name))
        self.decisions.labels(*key, decision.reason.split(":")[0]).inc()
        self._record_cold_start(key, decision)
        self.last_refresh.labels(*key).set(refreshed_at_s)

    def _record_cold_start(self, key: tuple[str, str, str], decision: Decision) -> None:
        d = decision.details
        if "cold_start_s" in d:
            self.cold_start_seconds.labels(*key).set(d["cold_start_s"])
            self.cold_start_samples.labels(*key).set(d["cold_start_samples"])
        if d.get("warming_replicas") is not None:
            self.warming_replicas.labels(*key).set(d["warming_replicas"])
        else:
            self._remove(self.warming_replicas, key)
        source = d.get("replica_source")
        for s in _REPLICA_SOURCES:
            if s == source:
                self.replica_source.labels(*key, s).set(1)
            else:
                self._remove(self.replica_source, (*key, s))
        if decision.reason == "from-zero":
            self.scale_from_zero.labels(*key).inc()
        idle = d.get("idle")
        if idle and idle.get("idle_s") is not None:
            self.idle_seconds.labels(*key).set(idle["idle_s"])
        else:
            self.idle_seconds.labels(*key).set(0)
        for v in decision.signals:
            if v.forecast_value is not None:
                self.forecast_value.labels(*key, v.signal.value).set(v.forecast_value)
            else:
                self._remove(self.forecast_value, (*key, v.signal.value))

    def forget(self, key: tuple[str, str, str]) -> None:
        """Drop every series of a ScaledObject that is no longer polled, so cardinality stays bounded."""
        for metric in (
            self.desired_replicas,
            self.active,
            self.current_replicas,
            self.ready_replicas,
            self.last_refresh,
            self.warming_replicas,
            self.cold_start_seconds,
            self.cold_start_samples,
            self.scale_from_zero,
            self.idle_seconds,
        ):
            self._remove(metric, key)
        for s in _REPLICA_SOURCES:
            self._remove(self.replica_source, (*key, s))
        for metric in (
            self.signal_value,
            self.signal_desired_replicas,
            self.signal_missing,
            self.signal_target,
            self.forecast_value,
        ):
            for signal in ("queue", "tokens", "gpu", "latency"):
                self._remove(metric, (*key, signal))
        for labels in list(self.decisions._metrics):  # no public API lists children
            if tuple(labels[:3]) == key:
                self.decisions.remove(*labels)

    @staticmethod
    def _remove(metric: Gauge | Counter, labels: tuple[str, ...]) -> None:
        if metric.has(labels):  # most calls find nothing to remove; remove() itself costs far more
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
