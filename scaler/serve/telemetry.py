"""The scaler's own Prometheus metrics (served on ``--metrics-port``).

Every metric takes its ``registry``, so tests use a fresh ``CollectorRegistry``. Labels are bounded:
namespace, scaledobject, deployment, signal (4 values), reason (a handful), query kind, RPC method.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from scaler.core.decision import Decision, FloorKind, Reason

_SO = ("namespace", "scaledobject", "deployment")
_REPLICA_SOURCES = ("kubernetes", "kube-state-metrics", "metrics", "simulation")
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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
        # Cold start (one story with explain: the same numbers as the Decision's fields).
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
            "The projection's demand over the reaction horizon (signal=arrivals: requests/s forecast; "
            "signal=replicas: the replicas it needs, fractional).",
            (*_SO, "signal"),
            registry=registry,
        )
        self.capacity = Gauge(
            "llm_scaler_capacity_requests_per_second",
            "Requests/s one Ready replica serves within the SLO for the current mix (learned or prior).",
            _SO,
            registry=registry,
        )
        self.headroom = Gauge(
            "llm_scaler_headroom_replicas",
            "Warm replicas held for bursts shorter than the reaction horizon.",
            _SO,
            registry=registry,
        )
        self.floor_replicas = Gauge(
            "llm_scaler_floor_replicas",
            "Each floor under the answer (headroom, missing-data, latency-guard, loading, keep-warm).",
            (*_SO, "floor"),
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
        self.decisions.labels(*key, decision.reason.value).inc()
        self._record_cold_start(key, decision)
        self.last_refresh.labels(*key).set(refreshed_at_s)

    def _record_cold_start(self, key: tuple[str, str, str], decision: Decision) -> None:
        self.cold_start_seconds.labels(*key).set(decision.cold_start.seconds)
        self.cold_start_samples.labels(*key).set(decision.cold_start.samples)
        if decision.warming_replicas is not None:
            self.warming_replicas.labels(*key).set(decision.warming_replicas)
        else:
            self._remove(self.warming_replicas, key)
        source = decision.replica_source.value
        for s in _REPLICA_SOURCES:
            if s == source:
                self.replica_source.labels(*key, s).set(1)
            else:
                self._remove(self.replica_source, (*key, s))
        if decision.reason == Reason.FROM_ZERO:
            self.scale_from_zero.labels(*key).inc()
        idle = decision.idle
        self.idle_seconds.labels(*key).set(idle.idle_s if idle is not None and idle.idle_s is not None else 0)
        p = decision.projection
        for name, value in (
            ("arrivals", p.forecast_per_s if p else None),
            ("replicas", p.replicas if p else None),
        ):
            if value is not None:
                self.forecast_value.labels(*key, name).set(value)
            else:
                self._remove(self.forecast_value, (*key, name))
        if decision.capacity is not None:
            self.capacity.labels(*key).set(decision.capacity.requests_per_s_per_replica)
        else:
            self._remove(self.capacity, key)
        if decision.headroom is not None:
            self.headroom.labels(*key).set(decision.headroom.replicas)
        else:
            self._remove(self.headroom, key)
        present = {f.kind.value: f.replicas for f in decision.floors}
        for kind in FloorKind:
            if kind.value in present:
                self.floor_replicas.labels(*key, kind.value).set(present[kind.value])
            else:
                self._remove(self.floor_replicas, (*key, kind.value))

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
            self.capacity,
            self.headroom,
        ):
            self._remove(metric, key)
        for kind in FloorKind:
            self._remove(self.floor_replicas, (*key, kind.value))
        for name in ("arrivals", "replicas"):
            self._remove(self.forecast_value, (*key, name))
        for s in _REPLICA_SOURCES:
            self._remove(self.replica_source, (*key, s))
        for metric in (
            self.signal_value,
            self.signal_desired_replicas,
            self.signal_missing,
            self.signal_target,
        ):
            for signal in ("queue", "tokens", "gpu", "latency"):
                self._remove(metric, (*key, signal))
        for labels in list(self.decisions._metrics):  # no public API lists children
            if tuple(labels[:3]) == key:
                self.decisions.remove(*labels)

    @staticmethod
    def _remove(metric: Gauge | Counter, labels: tuple[str, ...]) -> None:
        with contextlib.suppress(KeyError):
            metric.remove(*labels)
