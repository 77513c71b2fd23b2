"""PromQL for a batch of ScaledObjects, and the pure reduction of its results into ``Signals``.

One refresh asks one Prometheus a bounded set of queries (at most ``1 + 7 per backend + 1``), grouped
``by (namespace, pod, <model label>)`` and confined to the namespaces of the ScaledObjects it serves.
The per-ScaledObject work (which pods belong to which Deployment, which model) is done here, in
Python, so no metadata value other than a validated namespace ever enters PromQL.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scaler.core.config import Backend, LatencyMetric
from scaler.core.signals import SignalName, Signals
from scaler.core.state import Series, pack_floats
from scaler.core.target import Target
from scaler.sources.profile import DCGM_GPU_UTIL_METRIC, LatencyKind, LatencySource, profile_for

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float


@dataclass(frozen=True)
class Query:
    """A named PromQL query; ``kind`` is a bounded label for the scaler's own metrics."""

    kind: str
    promql: str


@dataclass
class QueryPlan:
    queries: list[Query] = field(default_factory=list)

    def add(self, kind: str, promql: str) -> None:
        if all(q.kind != kind for q in self.queries):
            self.queries.append(Query(kind, promql))


def _namespace_matcher(targets: Iterable[Target]) -> str:
    # Namespaces are validated RFC 1123 labels ([a-z0-9-]), so they are regex- and string-safe as is.
    names = sorted({t.namespace for t in targets})
    return f'namespace=~"{"|".join(names)}"'


def _names_matcher(metrics: Sequence[str]) -> str:
    return f'__name__=~"{"|".join(re.escape(m) for m in metrics)}"'


def plan_queries(targets: Sequence[Target], rate_window: str) -> QueryPlan:
    """The queries one refresh needs for ``targets`` (all on one Prometheus)."""
    plan = QueryPlan()
    if not targets:
        return plan
    ns = _namespace_matcher(targets)
    plan.add("up", f"max by (namespace, pod) (up{{{ns}}})")
    for backend in sorted({t.config.backend for t in targets}):
        prof = profile_for(backend)
        by = f"namespace, pod, {prof.model_label}"
        plan.add(f"{backend}:presence", f"count by ({by}) ({prof.presence_metric}{{{ns}}})")
        plan.add(f"{backend}:queue", f"sum by ({by}) ({{{_names_matcher(prof.queue_metrics)}, {ns}}})")
        # One query per counter: rate() drops __name__, so rate({__name__=~"a|b"}) would give two series
        # with one label set, which Prometheus refuses
        # ("vector cannot contain metrics with the same labelset").
        for i, counter in enumerate(prof.throughput_counters):
            plan.add(f"{backend}:throughput:{i}", f"sum by ({by}) (rate({counter}{{{ns}}}[{rate_window}]))")
        metrics = {
            t.config.latency_metric for t in targets if t.config.backend == backend and t.config.latency_slo_s
        }
        for metric in sorted(metrics):
            for i, src in enumerate(prof.latency[metric]):
                kind = f"{backend}:latency:{metric}:{i}"
                if src.kind == LatencyKind.HISTOGRAM:
                    plan.add(kind, f"sum by ({by}, le) (rate({src.metric}{{{ns}}}[{rate_window}]))")
                elif src.kind == LatencyKind.SUMMARY:
                    plan.add(kind, f"max by ({by}, quantile) ({src.metric}{{{ns}}})")
                else:
                    plan.add(kind, f"sum by ({by}) (rate({src.metric}{{{ns}}}[{rate_window}]))")
                    plan.add(
                        kind + ":count", f"sum by ({by}) (rate({src.count_metric}{{{ns}}}[{rate_window}]))"
                    )
    if any(t.config.target_gpu_util_percent is not None for t in targets):
        plan.add("dcgm:gpu_util", f'{DCGM_GPU_UTIL_METRIC}{{{ns}, pod!=""}}')
    return plan


def pod_pattern(deployment: str) -> re.Pattern[str]:
    """Pods of a Deployment are ``<deployment>-<pod-template-hash>-<suffix>``.

    Anchored with exactly two segments after the name, so Deployment ``llama`` does not claim the pods
    of Deployment ``llama-8b`` (``llama-8b-6f9c7b8d5-x2kqp`` has three segments after ``llama-``).
    """
    return re.compile(rf"{re.escape(deployment)}-[a-z0-9]+-[a-z0-9]+")


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` on cumulative bucket counts (or rates) keyed by ``le``.

    Linear interpolation inside the bucket where the rank falls; the lowest bucket starts at 0; a rank
    in the +Inf bucket returns the highest finite bound. ``None`` when there were no observations.
    Worked example: buckets {0.5: 2, 1: 8, +Inf: 10}, q=0.5: rank 5 falls in (0.5, 1] holding 6, at
    (5-2)/6 of it: 0.5 + 0.5 x 0.5 = 0.75.
    """
    if not buckets or math.inf not in buckets:
        return None
    bounds = sorted(buckets)
    counts = [buckets[b] for b in bounds]
    # Enforce monotonicity, as Prometheus does, against scrape skew between bucket series.
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if not total > 0:
        return None
    rank = q * total
    idx = next(i for i, c in enumerate(counts) if c >= rank)
    if bounds[idx] == math.inf:
        return bounds[-2] if len(bounds) > 1 else None
    start = bounds[idx - 1] if idx > 0 else 0.0
    below = counts[idx - 1] if idx > 0 else 0.0
    in_bucket = counts[idx] - below
    if in_bucket <= 0:
        return bounds[idx]
    return start + (bounds[idx] - start) * (rank - below) / in_bucket


def _finite(samples: Iterable[Sample]) -> list[Sample]:
    return [s for s in samples if math.isfinite(s.value)]


InstantIndex = dict[tuple[str, str], dict[str, list[Sample]]]


def index_instant(results: Mapping[str, Sequence[Sample]]) -> InstantIndex:
    """One refresh's results grouped by (namespace, Deployment of the pod), so each ScaledObject reads
    its own few samples: scanning every sample for each of 2,000 ScaledObjects was most of a refresh's
    CPU in `make bench` (54,000 scans of 50 pods' samples per three collects). A pod named
    ``<deployment>-<hash>-<suffix>`` (``pod_pattern``) belongs to ``pod.rsplit("-", 2)[0]`` and to no
    other Deployment, as neither segment after it holds a '-'; samples without a namespace or pod
    label are dropped, as ``reduce_signals`` would drop them."""
    index: InstantIndex = defaultdict(lambda: defaultdict(list))
    for kind, samples in results.items():
        for s in samples:
            ns, pod = s.labels.get("namespace"), s.labels.get("pod")
            if ns and pod and pod.count("-") >= 2:
                index[(ns, pod.rsplit("-", 2)[0])][kind].append(s)
    return {k: dict(v) for k, v in index.items()}


def reduce_signals(target: Target, results: Mapping[str, Sequence[Sample]]) -> Signals:
    """Turn one refresh's query results (all of them, or the Deployment's entry of ``index_instant``)
    into the ``Signals`` of one ScaledObject."""
    cfg = target.config
    prof = profile_for(cfg.backend)
    pods = pod_pattern(cfg.deployment)

    def mine(kind: str, model_filter: bool = True) -> list[Sample]:
        out = []
        for s in results.get(kind, ()):
            if s.labels.get("namespace") != target.namespace or not pods.fullmatch(s.labels.get("pod", "")):
                continue
            if model_filter and cfg.model is not None and s.labels.get(prof.model_label) != cfg.model:
                continue
            out.append(s)
        return out

    backend = cfg.backend.value
    up = {s.labels["pod"]: s.value for s in mine("up", model_filter=False)}
    presence = {s.labels["pod"] for s in _finite(mine(f"{backend}:presence"))}
    failed = {p for p, v in up.items() if v != 1}
    ready_pods = presence - failed
    # A pod reporting NaN/Inf demand has unknown load, not zero load: it counts as unreadable, which
    # holds the fleet (summing it as 0 would let 3 pods with 1 NaN look like 2 idle ones and shrink).
    demand_kinds = [f"{backend}:queue", "dcgm:gpu_util"]
    demand_kinds += [f"{backend}:throughput:{i}" for i in range(len(prof.throughput_counters))]
    garbled = {
        s.labels["pod"]
        for kind in demand_kinds
        for s in mine(kind, model_filter=kind != "dcgm:gpu_util")
        if not math.isfinite(s.value)
    }
    unreadable = sorted(failed | garbled)
    current = len(set(up) | presence)
    notes: dict[str, str] = {}
    no_traffic: set[SignalName] = set()

    def total(kind: str) -> float | None:
        samples = _finite(mine(kind))
        return sum(s.value for s in samples) if samples else None

    queue = total(f"{backend}:queue")
    rates = [total(f"{backend}:throughput:{i}") for i in range(len(prof.throughput_counters))]
    known = [r for r in rates if r is not None]
    tokens = sum(known) if known else None
    if cfg.backend == Backend.TRITON:
        notes["tokens"] = "inferences/s (nv_inference_count)"

    gpu: float | None = None
    if cfg.target_gpu_util_percent is not None:
        gpus = _finite(mine("dcgm:gpu_util", model_filter=False))
        if gpus:
            # Average over the Deployment's GPUs (a TP=4 pod has four series), as the HPA would.
            gpu = sum(s.value for s in gpus) / len(gpus)
            notes["gpu"] = f"average of {len(gpus)} GPU(s)"

    latency: float | None = None
    if cfg.latency_slo_s is not None:
        latency, note, idle = _latency(
            cfg.latency_metric, cfg.latency_quantile, prof.latency[cfg.latency_metric], backend, mine
        )
        if note:
            notes["latency"] = note
        if idle:
            no_traffic.add(SignalName.LATENCY)

    if failed:
        notes["pods"] = f"{len(failed)} pod(s) not scraped successfully: {', '.join(sorted(failed)[:5])}"
    if garbled:
        notes["pods_nan"] = f"{len(garbled)} pod(s) report NaN/Inf demand: {', '.join(sorted(garbled)[:5])}"
    return Signals(
        current_replicas=current,
        ready_replicas=len(ready_pods),
        queue_requests=queue,
        tokens_per_s=tokens,
        gpu_util_percent=gpu,
        latency_s=latency,
        notes=notes,
        unreadable_pods=len(unreadable),
        no_traffic=frozenset(no_traffic),
    )


def _latency(
    metric: LatencyMetric,
    quantile: float,
    sources: Sequence[LatencySource],
    backend: str,
    mine: Callable[[str], list[Sample]],
) -> tuple[float | None, str, bool]:
    """(seconds, note, no_traffic) from the first source with data."""
    for i, src in enumerate(sources):
        kind = f"{backend}:latency:{metric}:{i}"
        samples = _finite(mine(kind))
        if not samples:
            continue
        if src.kind == LatencyKind.HISTOGRAM:
            buckets: dict[float, float] = defaultdict(float)
            for s in samples:
                buckets[float(s.labels.get("le", "nan"))] += s.value
            buckets.pop(math.nan, None)
            value = histogram_quantile(quantile, buckets)
            if value is None:
                return None, f"p{quantile * 100:g} of {src.metric}: no requests in the window", True
            return value * src.to_seconds, f"p{quantile * 100:g} from {src.metric}", False
        if src.kind == LatencyKind.SUMMARY:
            by_q: dict[float, list[float]] = defaultdict(list)
            for s in samples:
                by_q[float(s.labels.get("quantile", "nan"))].append(s.value)
            usable = sorted(q for q in by_q if q >= quantile) or sorted(by_q)[-1:]
            q = usable[0]
            return max(by_q[q]) * src.to_seconds, f"summary quantile {q:g}, max over pods", False
        counts = _finite(mine(kind + ":count"))
        requests_per_s = sum(s.value for s in counts)
        if requests_per_s <= 0:
            return None, "mean request duration: no requests in the window", True
        mean = sum(s.value for s in samples) / requests_per_s
        return mean * src.to_seconds, "mean request duration (enable summary_latencies for a quantile)", False
    return None, "", False


# -- history (range queries) ---------------------------------------------------------------------------
# Pods are `<deployment>-<hash>-<suffix>`; label_replace derives the Deployment in Prometheus so history
# comes back one series per Deployment (and model), not per pod: 2,000 ScaledObjects with 240 points
# each stay a few hundred thousand samples per history read. Same rule as pod_pattern.
_DEPLOYMENT_FROM_POD = '"deployment", "$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]+"'


def _by_deployment(expr: str, by: str) -> str:
    return f"sum by ({by}) (label_replace({expr}, {_DEPLOYMENT_FROM_POD}))"


def plan_history(targets: Sequence[Target], rate_window: str) -> QueryPlan:
    """Range queries for the demand history (queue, tokens) and the replica history of ``targets``."""
    plan = QueryPlan()
    if not targets:
        return plan
    ns = _namespace_matcher(targets)
    plan.add(
        "history:replicas", _by_deployment(f"max by (namespace, pod) (up{{{ns}}})", "namespace, deployment")
    )
    for backend in sorted({t.config.backend for t in targets}):
        prof = profile_for(backend)
        by = f"namespace, deployment, {prof.model_label}"
        plan.add(
            f"history:{backend}:queue", _by_deployment(f"{{{_names_matcher(prof.queue_metrics)}, {ns}}}", by)
        )
        for i, counter in enumerate(prof.throughput_counters):
            plan.add(
                f"history:{backend}:throughput:{i}",
                _by_deployment(f"rate({counter}{{{ns}}}[{rate_window}])", by),
            )
    return plan


@dataclass(frozen=True)
class RangeSample:
    """One series of a range query; times and values packed as in ``Series``."""

    labels: Labels
    times_s: Sequence[float]
    values: Sequence[float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "times_s", pack_floats(self.times_s))
        object.__setattr__(self, "values", pack_floats(self.values))


def _sum_series(series: Iterable[RangeSample]) -> Series | None:
    """Sum series point by point (range queries share their timestamps); None when there is none."""
    totals: dict[float, float] = defaultdict(float)
    seen = False
    for s in series:
        seen = True
        for t, v in zip(s.times_s, s.values, strict=True):
            if math.isfinite(v):
                totals[t] += v
    if not seen:
        return None
    times = tuple(sorted(totals))
    return Series(times, tuple(totals[t] for t in times))


HistoryIndex = dict[tuple[str, str], dict[str, list[RangeSample]]]


def index_history(results: Mapping[str, Sequence[RangeSample]]) -> HistoryIndex:
    """The history results grouped by (namespace, deployment), so each ScaledObject reads its own few
    series instead of scanning every series of every Deployment (2,000 ScaledObjects x 8,000 series
    would be 16 M label lookups per refresh)."""
    index: HistoryIndex = defaultdict(lambda: defaultdict(list))
    for kind, series in results.items():
        for s in series:
            ns, dep = s.labels.get("namespace"), s.labels.get("deployment")
            if ns is not None and dep is not None:
                index[(ns, dep)][kind].append(s)
    return {k: dict(v) for k, v in index.items()}


def reduce_history(
    target: Target, results: Mapping[str, Sequence[RangeSample]]
) -> tuple[dict[SignalName, Series], Series | None]:
    """(demand history by signal, replica history) of one ScaledObject from the history queries (all of
    them, or its Deployment's entry of ``index_history``)."""
    cfg = target.config
    prof = profile_for(cfg.backend)

    def mine(kind: str, model_filter: bool = True) -> list[RangeSample]:
        return [
            s
            for s in results.get(kind, ())
            if s.labels.get("namespace") == target.namespace
            and s.labels.get("deployment") == cfg.deployment
            and (not model_filter or cfg.model is None or s.labels.get(prof.model_label) == cfg.model)
        ]

    backend = cfg.backend.value
    demand: dict[SignalName, Series] = {}
    queue = _sum_series(mine(f"history:{backend}:queue"))
    if queue is not None:
        demand[SignalName.QUEUE] = queue
    tokens = _sum_series(
        s for i in range(len(prof.throughput_counters)) for s in mine(f"history:{backend}:throughput:{i}")
    )
    if tokens is not None:
        demand[SignalName.TOKENS] = tokens
    replicas = _sum_series(mine("history:replicas", model_filter=False))
    return demand, replicas


# -- kube-state-metrics (replicas, warming pods, start-up times when the Kubernetes API is not readable) --
def plan_kube_state(targets: Sequence[Target]) -> QueryPlan:
    """Instant queries on kube-state-metrics series: pod creation time, Ready time and Ready state."""
    plan = QueryPlan()
    if not targets:
        return plan
    ns = _namespace_matcher(targets)
    plan.add("ksm:created", f"max by (namespace, pod) (kube_pod_created{{{ns}}})")
    plan.add("ksm:ready_time", f"max by (namespace, pod) (kube_pod_status_ready_time{{{ns}}})")
    plan.add("ksm:ready", f'max by (namespace, pod) (kube_pod_status_ready{{{ns}, condition="true"}})')
    return plan


@dataclass(frozen=True)
class PodStates:
    """Pods of one Deployment as the Kubernetes API or kube-state-metrics sees them."""

    total: int
    ready: int
    warming_ages_s: tuple[float, ...]
    cold_starts_s: tuple[float, ...]


def reduce_kube_state(
    target: Target, results: Mapping[str, Sequence[Sample]], now_s: float
) -> PodStates | None:
    """Pod states from kube-state-metrics; None when it has no pod of this Deployment."""
    pods = pod_pattern(target.config.deployment)

    def by_pod(kind: str) -> dict[str, float]:
        return {
            s.labels["pod"]: s.value
            for s in results.get(kind, ())
            if s.labels.get("namespace") == target.namespace
            and pods.fullmatch(s.labels.get("pod", ""))
            and math.isfinite(s.value)
        }

    created, ready_time, ready = by_pod("ksm:created"), by_pod("ksm:ready_time"), by_pod("ksm:ready")
    if not created:
        return None
    ready_pods = {p for p in created if ready.get(p, 0.0) == 1.0}
    warming = tuple(max(0.0, now_s - created[p]) for p in sorted(created) if p not in ready_pods)
    starts = sorted((created[p], ready_time[p] - created[p]) for p in ready_pods if p in ready_time)
    return PodStates(
        total=len(created),
        ready=len(ready_pods),
        warming_ages_s=warming,
        cold_starts_s=tuple(d for _, d in starts if d > 0),
    )
