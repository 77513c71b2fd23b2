"""The scaler's own Prometheus metrics (served on ``--metrics-port``).

Every metric takes its ``registry``, so tests use a fresh ``CollectorRegistry``. Labels are bounded:
namespace, scaledobject, deployment, signal (4 values), reason (a handful), query kind, RPC method.

The per-ScaledObject series (``llm_scaler_desired_replicas`` ... ``llm_scaler_replica_source_info``) are
built when scraped, from the latest Decision of each ScaledObject: a refresh only hands the Decision
over. Setting them on every refresh (~15 series for each of 2,000 ScaledObjects every 2 s) took 92 ms
of each refresh; handing the Decision over takes 5 ms (an ad-hoc timing on this machine, not a repo
command). At the scrape, prometheus_client's text format validates and escapes every label of every
sample: 0.6-0.95 s for those 30,000 lines, holding the GIL from the RPCs. ``exposition()`` writes them
itself from label text escaped once per ScaledObject, and the metrics port serves that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from scaler.core.decision import Decision, Reason

Key = tuple[str, str, str]

_SO = ("namespace", "scaledobject", "deployment")
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Telemetry:
    """All metrics of one scaler process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.scaledobject_series = _ScaledObjectSeries()
        registry.register(self.scaledobject_series)
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

        # The process-wide metrics, exposed by prometheus_client's own text format (few series).
        self._process_metrics = (
            self.query_duration,
            self.query_errors,
            self.refresh_duration,
            self.queries_per_refresh,
            self.scaledobjects,
            self.rpc_duration,
            self.rpc_errors,
            self.streams,
        )

    def exposition(self) -> bytes:
        """What the metrics port serves: Prometheus' text format (0.0.4) of every metric above."""
        return generate_latest(_Metrics(self._process_metrics)) + self.scaledobject_series.text().encode()

    def observe_query(self, kind: str, seconds: float, error: Exception | None) -> None:
        # The query kind's first two parts ("vllm:queue") keep the label set bounded.
        label = ":".join(kind.split(":")[:2])
        self.query_duration.labels(label).observe(seconds)
        if error is not None:
            self.query_errors.labels(label).inc()

    def record(self, key: Key, decision: Decision, refreshed_at_s: float) -> None:
        """Publish one decision: the same numbers explain prints (built into series when scraped)."""
        self.scaledobject_series.record(key, decision, refreshed_at_s)

    def forget(self, key: Key) -> None:
        """Drop every series of a ScaledObject that is no longer polled, so cardinality stays bounded."""
        self.scaledobject_series.forget(key)


# -- the per-ScaledObject series, built when scraped --------------------------------------------------------

# (name, help, extra label) of each family; "counter" families are cumulative per ScaledObject and label.
_GAUGES = (
    ("desired_replicas", "Replicas the scaler asks for (the value returned to KEDA).", None),
    ("current_replicas", "Pods of the Deployment that exist, as the scaler sees them.", None),
    ("ready_replicas", "Pods of the Deployment that serve and report metrics.", None),
    ("active", "1 if the scaler reports the ScaledObject active.", None),
    (
        "signal_value",
        "Measured value of each signal (queue: requests, tokens: per s, gpu: percent, latency: s).",
        "signal",
    ),
    ("signal_desired_replicas", "Replicas each signal alone would ask for.", "signal"),
    ("signal_missing", "1 if the signal had no usable data at the last refresh.", "signal"),
    (
        "signal_target",
        "Each signal's target (queue, tokens: per replica; gpu: percent; latency: the SLO in s).",
        "signal",
    ),
    ("last_refresh_timestamp_seconds", "When this ScaledObject's data was last read successfully.", None),
    ("warming_replicas", "Pods that exist but are not Ready yet (capacity that is coming).", None),
    (
        "cold_start_seconds",
        "Cold start used in decisions: p90 of recent pod creation -> Ready, else coldStartSeconds.",
        None,
    ),
    (
        "cold_start_samples",
        "Observed start-ups behind llm_scaler_cold_start_seconds (0: the prior is used).",
        None,
    ),
    (
        "forecast_value",
        "The projection's demand over the reaction horizon (signal=arrivals: requests/s forecast; "
        "signal=replicas: the replicas it needs, fractional).",
        "signal",
    ),
    (
        "capacity_requests_per_second",
        "Requests/s one Ready replica serves within the SLO for the current mix (learned or prior).",
        None,
    ),
    ("headroom_replicas", "Warm replicas held for bursts shorter than the reaction horizon.", None),
    (
        "floor_replicas",
        "Each floor under the answer (headroom, missing-data, latency-guard, loading, keep-warm, kv-cache, "
        "demonstrated).",
        "floor",
    ),
    ("idle_seconds", "Time since demand was last seen, when the Deployment is idle.", None),
    (
        "replica_source_info",
        "Where replica counts and warming pods come from (kubernetes, kube-state-metrics, metrics).",
        "source",
    ),
)
_COUNTERS = (
    ("decisions", "Decisions made, by the reason that won.", "reason"),
    ("scale_from_zero", "Refreshes that activated a Deployment at zero replicas (reason from-zero).", None),
)


class _ScaledObjectSeries:
    """A prometheus_client collector of every ScaledObject's series, from its latest Decision.

    ``record`` runs in the refresh's worker threads and ``collect`` on the metrics server's thread: both
    hold the lock only to swap or copy references, so a scrape never waits for a refresh."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[Key, tuple[Decision, float]] = {}
        # (counter, key, label) -> (count, created): cumulative, as prometheus_client's Counter
        self._counts: dict[tuple[str, Key, str], tuple[float, float]] = {}

    def record(self, key: Key, decision: Decision, refreshed_at_s: float) -> None:
        counted = [("decisions", decision.reason.value)]
        if decision.reason == Reason.FROM_ZERO:
            counted.append(("scale_from_zero", ""))
        with self._lock:
            self._latest[key] = (decision, refreshed_at_s)
            for name, label in counted:
                count, created = self._counts.get((name, key, label), (0.0, time.time()))
                self._counts[(name, key, label)] = (count + 1, created)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._latest.pop(key, None)
            for k in [k for k in self._counts if k[1] == key]:
                del self._counts[k]

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def text(self) -> str:
        """The same series as ``collect`` in the text format, as prometheus_client writes them (labels
        sorted by name, values by its floatToGoString), from each ScaledObject's label text escaped
        once; cumulative counters without the ``_created`` series."""
        with self._lock:
            latest = list(self._latest.items())
            counts = list(self._counts.items())
        lines: dict[str, list[str]] = {name: [] for name, _, _ in (*_GAUGES, *_COUNTERS)}
        for key, (decision, refreshed_at_s) in latest:
            head, tail = _label_text(key)
            for name, extra, value in _series(decision, refreshed_at_s):
                labels = (
                    f"{head},{tail}" if extra is None else f'{head},{tail},{_EXTRA[name]}="{_escape(extra)}"'
                )
                lines[name].append(f"llm_scaler_{name}{{{labels}}} {_value(value)}\n")
        for (name, key, label), (count, _created) in counts:
            head, tail = _label_text(key)
            # "reason" sorts between "namespace" and "scaledobject"
            labels = f'{head},reason="{_escape(label)}",{tail}' if label else f"{head},{tail}"
            lines[name].append(f"llm_scaler_{name}_total{{{labels}}} {_value(count)}\n")
        out: list[str] = []
        for name, doc, _ in _GAUGES:
            out += [f"# HELP llm_scaler_{name} {doc}\n# TYPE llm_scaler_{name} gauge\n", *lines[name]]
        for name, doc, _ in _COUNTERS:
            out += [
                f"# HELP llm_scaler_{name}_total {doc}\n# TYPE llm_scaler_{name}_total counter\n",
                *lines[name],
            ]
        return "".join(out)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            latest = list(self._latest.items())
            counts = list(self._counts.items())
        families = self._families()
        for key, (decision, refreshed_at_s) in latest:
            for name, extra, value in _series(decision, refreshed_at_s):
                families[name].add_metric((*key, extra) if extra is not None else key, value)
        for (name, key, label), (count, created) in counts:
            family = families[name]
            assert isinstance(family, CounterMetricFamily)
            family.add_metric((*key, label) if label else key, count, created=created)
        return families.values()

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
        out: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for name, doc, extra in _GAUGES:
            out[name] = GaugeMetricFamily(
                f"llm_scaler_{name}", doc, labels=(*_SO, *((extra,) if extra else ()))
            )
        for name, doc, extra in _COUNTERS:
            out[name] = CounterMetricFamily(
                f"llm_scaler_{name}", doc, labels=(*_SO, *((extra,) if extra else ()))
            )
        return out


def _series(decision: Decision, refreshed_at_s: float) -> Iterator[tuple[str, str | None, float]]:
    """(family, extra label value or None, value) of one decision: the same numbers explain prints.
    A missing value has no series (missing is not zero, and not the last value either)."""
    yield "desired_replicas", None, decision.desired_replicas
    yield "active", None, 1 if decision.active else 0
    if decision.current_replicas is not None:
        yield "current_replicas", None, decision.current_replicas
    if decision.ready_replicas is not None:
        yield "ready_replicas", None, decision.ready_replicas
    for v in decision.signals:
        name = v.signal.value
        yield "signal_missing", name, 1 if v.status == "missing" else 0
        yield "signal_target", name, v.target
        if v.value is not None:
            yield "signal_value", name, v.value
        if v.desired_replicas is not None:
            yield "signal_desired_replicas", name, v.desired_replicas
    yield "last_refresh_timestamp_seconds", None, refreshed_at_s
    yield "cold_start_seconds", None, decision.cold_start.seconds
    yield "cold_start_samples", None, decision.cold_start.samples
    if decision.warming_replicas is not None:
        yield "warming_replicas", None, decision.warming_replicas
    yield "replica_source_info", decision.replica_source.value, 1
    idle = decision.idle
    yield "idle_seconds", None, idle.idle_s if idle is not None and idle.idle_s is not None else 0
    p = decision.projection
    if p is not None:
        yield "forecast_value", "arrivals", p.forecast_per_s
        yield "forecast_value", "replicas", p.replicas
    if decision.capacity is not None:
        yield "capacity_requests_per_second", None, decision.capacity.requests_per_s_per_replica
    if decision.headroom is not None:
        yield "headroom_replicas", None, decision.headroom.replicas
    # One series per kind, as a gauge child holds one value (the last floor of a kind, if ever two).
    for kind, replicas in {f.kind.value: f.replicas for f in decision.floors}.items():
        yield "floor_replicas", kind, replicas


_EXTRA = {name: extra for name, _, extra in _GAUGES if extra}


def _value(value: float) -> str:
    """A sample value as prometheus_client writes it (3.0, +Inf, NaN, 1.5e+07)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _escape(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_LABEL_TEXT: dict[Key, tuple[str, str]] = {}


def _label_text(key: Key) -> tuple[str, str]:
    """('deployment="d",namespace="n"', 'scaledobject="s"'): a ScaledObject's labels in sorted order,
    split where an extra label sorting between them ("reason") goes. Escaped once per ScaledObject."""
    text = _LABEL_TEXT.get(key)
    if text is None:
        namespace, scaledobject, deployment = (_escape(v) for v in key)
        if len(_LABEL_TEXT) > 100_000:  # ScaledObjects come and go; keep the memo bounded
            _LABEL_TEXT.clear()
        text = _LABEL_TEXT[key] = (
            f'deployment="{deployment}",namespace="{namespace}"',
            f'scaledobject="{scaledobject}"',
        )
    return text


class _Metrics:
    """Collects just these metrics (prometheus_client's generate_latest takes anything with collect())."""

    def __init__(self, metrics: Iterable[Gauge | Counter | Histogram]) -> None:
        self.metrics = tuple(metrics)

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield from metric.collect()


def start_metrics_server(port: int, address: str, render: Callable[[], bytes]) -> ThreadingHTTPServer:
    """Serve ``render()`` on every GET, in Prometheus' text format, from a daemon thread (as
    prometheus_client's start_http_server does, without its content negotiation and gzip, which
    Prometheus does not need); the server is returned for ``shutdown()`` and ``server_close()``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every 15 s is not news

    httpd = ThreadingHTTPServer((address, port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="metrics-http").start()
    return httpd
