"""PromQL for a batch of ScaledObjects, and the pure reduction of its results into ``Signals``.

One refresh asks one Prometheus a bounded set of queries (a fixed number per backend profile, whatever the
number of ScaledObjects), grouped ``by (namespace, pod, <model label>)`` and confined to the namespaces of
the ScaledObjects it serves. A Triton ScaledObject with ``tritonBackend: auto`` plans the three Triton
shapes' queries (TensorRT-LLM, vLLM backend, generic); which one a Deployment is read with is decided in
``choose_profile`` from the presence queries' results, so telling them apart costs no query.
The per-ScaledObject work (which pods belong to which Deployment, which model) is done here, in
Python, so no metadata value other than a validated namespace ever enters PromQL. Which pods are a
Deployment's is ``membership``'s: by ownership (``PodStates`` from the Kubernetes API or the
kube-state-metrics join planned here), else by the names Kubernetes generates.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from scaler.core.config import Backend, LatencyMetric, ScalerConfig
from scaler.core.signals import Measure, SignalName, Signals
from scaler.core.state import LatencyWindow, Series, pack_floats
from scaler.core.target import Target
from scaler.sources.membership import (
    MAX_GENERATED_BASE,
    MAX_HASH_CHARS,
    SUFFIX_CHARS,
    SUFFIX_LEN,
    PodFacts,
    PodStates,
    count_pods,
    deployment_key,
    deployment_keys,
    generated_prefix,
    not_a_deployment,
    pod_pattern,
    prefix_pattern,
)
from scaler.sources.profile import (
    DCGM_GPU_UTIL_METRIC,
    TRITON,
    BackendProfile,
    LabelledGauge,
    LatencyKind,
    LatencySource,
    candidate_profiles,
)
from scaler.sources.spec import Matcher, Op, QuerySpec, Regroup, Relabel, render

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float


@dataclass(frozen=True)
class Query:
    """A named PromQL query; ``kind`` is a bounded label for the scaler's own metrics. ``spec``: the query as
    data when a plan built it (``promql`` is then its rendering), None for free text (``activationQuery``)."""

    kind: str
    promql: str
    spec: QuerySpec | None = None
    step_s: float | None = None  # range queries: the step, when not the history step

    @classmethod
    def of(cls, kind: str, spec: QuerySpec, step_s: float | None = None) -> Query:
        return cls(kind, render(spec), spec, step_s)


@dataclass
class QueryPlan:
    queries: list[Query] = field(default_factory=list)

    def add(self, kind: str, promql: str) -> None:
        if all(q.kind != kind for q in self.queries):
            self.queries.append(Query(kind, promql))

    def add_spec(self, kind: str, spec: QuerySpec, step_s: float | None = None) -> None:
        if all(q.kind != kind for q in self.queries):
            self.queries.append(Query.of(kind, spec, step_s))


def _namespace_matcher(targets: Iterable[Target]) -> str:
    return _namespaces(targets).render()


def _names_matcher(metrics: Sequence[str]) -> str:
    return f'__name__=~"{"|".join(re.escape(m) for m in metrics)}"'


def _namespaces(targets: Iterable[Target]) -> Matcher:
    # Namespaces are validated RFC 1123 labels ([a-z0-9-]), so they are regex- and string-safe as is.
    return Matcher("namespace", "=~", "|".join(sorted({t.namespace for t in targets})))


def once_per_pod(by: Sequence[str], series_labels: Sequence[str], name: bool = False) -> tuple[str, ...]:
    """The labels of a ``max by`` that keeps each of a pod's own series once, however many scrape jobs read
    it (``QuerySpec.dedupe``).

    A ServiceMonitor beside the PodMonitor scrapes the same pod again under its own job, service and
    endpoint labels; summing both counted 3 waiting + 5 running as 16. ``max`` over everything but the pod
    and its own series labels (``by``, ``series_labels``, and ``__name__`` when the query selects several
    metrics) keeps one of each before anything is summed."""
    return (*["__name__"] * name, *by, *series_labels)


def plan_queries(targets: Sequence[Target], rate_window: str, gpu_lookback: str = "60s") -> QueryPlan:
    """The queries one refresh needs for ``targets`` (all on one Prometheus). ``gpu_lookback``: the
    staleness bound; a GPU with no sample within it is absent (see ``reduce_signals``)."""
    plan = QueryPlan()
    if not targets:
        return plan
    ns = (_namespaces(targets),)
    plan.add_spec("up", QuerySpec(Op.MAX, ("up",), ns, by=("namespace", "pod")))
    for prof in planned_profiles(targets):
        backend = prof.key
        by = ("namespace", "pod", prof.model_label)
        ids = prof.series_labels
        plan.add_spec(f"{backend}:presence", QuerySpec(Op.COUNT, (prof.presence_metric,), ns, by))
        queue = QuerySpec(
            Op.SUM,
            prof.queue_metrics,
            (*ns, *prof.queue_matchers),
            by,
            metric_set=True,
            dedupe=once_per_pod(by, ids, True),
        )
        plan.add_spec(f"{backend}:queue", queue)
        # One query per counter: rate() drops __name__, so rate({__name__=~"a|b"}) would give two series
        # with one label set, which Prometheus refuses
        # ("vector cannot contain metrics with the same labelset").
        for i, counter in enumerate(prof.throughput_counters):
            rate = QuerySpec(
                Op.SUM_RATE, (counter,), ns, by, window=rate_window, dedupe=once_per_pod(by, ids)
            )
            plan.add_spec(f"{backend}:throughput:{i}", rate)
        for kind, spec in _engine_specs(prof, ns, by, rate_window):
            plan.add_spec(f"{backend}:{kind}", spec)
        metrics = {
            t.config.latency_metric
            for t in targets
            if prof in candidate_profiles(t.config) and t.config.latency_slo_s
        }
        for metric in sorted(metrics):
            for i, src in enumerate(prof.latency[metric]):
                kind = f"{backend}:latency:{metric}:{i}"
                for suffix, spec in _latency_specs(src, ns, by, ids, rate_window):
                    plan.add_spec(kind + suffix, spec)
    if any(t.config.target_gpu_util_percent is not None for t in targets):
        # The last sample within the staleness bound: a GPU whose series has none that recent is absent
        # (a gap is bridged, a configuration problem shows). Series are per GPU; de-duplicated per pod
        # and GPU in Python.
        gpu = (*ns, Matcher("pod", "!=", ""))
        plan.add_spec(
            "dcgm:gpu_util", QuerySpec(Op.LAST_OVER_TIME, (DCGM_GPU_UTIL_METRIC,), gpu, window=gpu_lookback)
        )
    return plan


def planned_profiles(targets: Iterable[Target]) -> list[BackendProfile]:
    """Every profile one of ``targets`` may read, once each, in the order of their keys."""
    found = {p.key: p for t in targets for p in candidate_profiles(t.config)}
    return [found[k] for k in sorted(found)]


def _labelled_spec(
    gauge: LabelledGauge, prof: BackendProfile, ns: tuple[Matcher, ...], by: tuple[str, ...]
) -> QuerySpec:
    """Per pod and sub-label value: ``sum by (namespace, pod, model, request_type) (...)``."""
    once = tuple(dict.fromkeys(once_per_pod((*by, gauge.label), prof.series_labels)))
    return QuerySpec(Op.SUM, (gauge.metric,), (*ns, gauge.matcher()), (*by, gauge.label), dedupe=once)


def _engine_specs(
    prof: BackendProfile, ns: tuple[Matcher, ...], by: tuple[str, ...], rate_window: str
) -> list[tuple[str, QuerySpec]]:
    """(kind, spec) of the engine's own numbers: running and waiting per pod, and the rates of requests
    finished and of the step histogram's sum and count (the prompt and generated tokens are throughput
    counters already). Empty for a backend without them. Per pod, with ``by``: history regroups them."""
    once = once_per_pod(by, prof.series_labels)
    out: list[tuple[str, QuerySpec]] = []
    for kind, gauge in (("running", prof.running_metric), ("waiting", prof.waiting_metric)):
        if gauge is not None:
            out.append((kind, QuerySpec(Op.SUM, (gauge,), ns, by, dedupe=once)))
    counters = [("requests", prof.requests_counter)]
    if prof.step_histogram is not None:
        counters += [
            ("step:sum", f"{prof.step_histogram}_sum"),
            ("step:count", f"{prof.step_histogram}_count"),
        ]
    for kind, counter in counters:
        if counter is not None:
            out.append((kind, QuerySpec(Op.SUM_RATE, (counter,), ns, by, window=rate_window, dedupe=once)))
    if prof.request_types is not None:
        out.append(("request_types", _labelled_spec(prof.request_types, prof, ns, by)))
    if prof.kv_blocks is not None:
        out.append(("kv_blocks", _labelled_spec(prof.kv_blocks, prof, ns, by)))
    if prof.iteration_counter is not None:
        # A gauge, but monotonic (the executor's iteration count), so rate() reads iterations/s.
        it = prof.iteration_counter
        spec = QuerySpec(Op.SUM_RATE, (it.metric,), (*ns, it.matcher()), by, window=rate_window, dedupe=once)
        out.append(("iterations", spec))
    if prof.batch_tokens is not None:
        # Per-iteration gauges, averaged over the rate window (one sample is one iteration of many).
        batch = replace(
            _labelled_spec(prof.batch_tokens, prof, ns, by), op=Op.SUM_AVG_OVER_TIME, window=rate_window
        )
        out.append(("batch", batch))
    return out


def _latency_specs(
    src: LatencySource, ns: tuple[Matcher, ...], by: tuple[str, ...], ids: tuple[str, ...], rate_window: str
) -> list[tuple[str, QuerySpec]]:
    """(kind suffix, spec) of one latency source: bucket rates, summary quantiles, or the two mean rates."""
    if src.kind == LatencyKind.HISTOGRAM:
        once = once_per_pod(by, (*ids, "le"))
        return [("", QuerySpec(Op.HISTOGRAM_RATE, (src.metric,), ns, by, window=rate_window, dedupe=once))]
    if src.kind == LatencyKind.SUMMARY:
        return [("", QuerySpec(Op.MAX, (src.metric,), ns, (*by, "quantile")))]
    assert src.count_metric is not None  # a MEAN source names its request counter
    once = once_per_pod(by, ids)
    return [
        ("", QuerySpec(Op.SUM_RATE, (src.metric,), ns, by, window=rate_window, dedupe=once)),
        (":count", QuerySpec(Op.SUM_RATE, (src.count_metric,), ns, by, window=rate_window, dedupe=once)),
    ]


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


# A generated pod name is its ReplicaSet's prefix (at most MAX_GENERATED_BASE characters) and SUFFIX_LEN
# random ones. Shorter than this, the prefix was not cut: ``<deployment>-<hash>-<suffix>``.
_CUT_POD_CHARS = MAX_GENERATED_BASE + SUFFIX_LEN
# Deployments this long may have pods of _CUT_POD_CHARS (``<deployment>-<10 hash chars>-`` is 58 at 46).
_CUT_DEPLOYMENT_CHARS = MAX_GENERATED_BASE - MAX_HASH_CHARS - 2


@dataclass(frozen=True)
class InstantIndex:
    """One refresh's instant results grouped so each ScaledObject reads its own few samples: scanning
    every sample for each of 2,000 ScaledObjects was most of a refresh's CPU in `make bench` (54,000
    scans of 50 pods' samples per three collects). ``samples_for`` gives a superset of what
    ``reduce_signals`` keeps, which still matches every sample itself.

    ``by_name``: by (namespace, Deployment the pod's name says): a pod named
    ``<deployment>-<hash>-<suffix>`` (``pod_pattern``) belongs to ``pod.rsplit("-", 2)[0]`` and to no
    other Deployment, as neither segment after it holds a '-'. Pods of 63 characters may have had their
    prefix cut (``llama-...-west4b-5d4f8b7c`` + 5 random, no hyphen before the suffix): ``cut``, by
    namespace, read by the Deployments long enough to have such pods. ``by_pod``: by (namespace, pod),
    for pods known by ownership, whatever their names. Samples without a namespace or pod label are
    dropped, as ``reduce_signals`` would drop them."""

    by_name: dict[tuple[str, str], dict[str, list[Sample]]]
    cut: dict[str, dict[str, list[Sample]]]
    by_pod: dict[tuple[str, str], dict[str, list[Sample]]]
    # (namespace, a pod's name less its 5-character suffix) -> those pods: a ReplicaSet's pods, gone or live
    by_prefix: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def samples_for(self, target: Target, pods: PodStates | None) -> Mapping[str, Sequence[Sample]]:
        """A superset of the samples ``reduce_signals(target, ..., pods)`` keeps, by query kind."""
        ns = target.namespace
        if pods is not None:
            names = set(pods.pods).union(*(self.by_prefix.get((ns, p), ()) for p in pods.prefixes))
            parts = [self.by_pod.get((ns, pod), {}) for pod in sorted(names)]
        else:
            named = self.by_name.get((ns, target.config.deployment), {})
            if len(target.config.deployment) < _CUT_DEPLOYMENT_CHARS or ns not in self.cut:
                return named
            parts = [named, self.cut[ns]]
        out: dict[str, list[Sample]] = defaultdict(list)
        for part in parts:
            for kind, samples in part.items():
                out[kind].extend(samples)
        return out


def index_instant(results: Mapping[str, Sequence[Sample]]) -> InstantIndex:
    """``results`` as an ``InstantIndex``."""
    by_name: dict[tuple[str, str], dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    cut: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    by_pod: dict[tuple[str, str], dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    by_prefix: dict[tuple[str, str], set[str]] = defaultdict(set)
    for kind, samples in results.items():
        for s in samples:
            ns, pod = s.labels.get("namespace"), s.labels.get("pod")
            if not ns or not pod:
                continue
            by_pod[(ns, pod)][kind].append(s)
            if len(pod) >= _CUT_POD_CHARS:
                cut[ns][kind].append(s)
            elif pod.count("-") >= 2:
                by_name[(ns, pod.rsplit("-", 2)[0])][kind].append(s)
    for ns, pod in by_pod:  # once per pod, not once per sample
        if len(pod) > SUFFIX_LEN:
            by_prefix[(ns, pod[:-SUFFIX_LEN])].add(pod)
    return InstantIndex(
        by_name={k: dict(v) for k, v in by_name.items()},
        cut={k: dict(v) for k, v in cut.items()},
        by_pod={k: dict(v) for k, v in by_pod.items()},
        by_prefix={k: frozenset(v) for k, v in by_prefix.items()},
    )


def reduce_signals(
    target: Target,
    results: Mapping[str, Sequence[Sample]],
    pods: PodStates | None = None,
    window_s: float = 60.0,
    shape: Shape | None = None,
) -> Signals:
    """Turn one refresh's query results (all of them, or ``InstantIndex.samples_for`` the target) into
    the ``Signals`` of one ScaledObject. ``shape``: ``shape_of(target, results, pods)`` when the caller
    has it already (the collect needs it for the history too); computed here otherwise.

    ``pods``: its pods by ownership (Kubernetes API or kube-state-metrics); without them its pods are
    matched by name. A pod that is not Ready and cannot be scraped is loading (vLLM binds its port before
    it listens, so a loading pod shows ``up == 0``): warming, not unreadable. A Ready pod whose scrape
    fails is unreadable. By name, readiness is unknown: pods that fail while none of the Deployment's
    pods answers are taken to be loading (the first step from zero), otherwise unreadable."""
    cfg = target.config
    if shape is None:
        shape = shape_of(target, results, pods)
    prof, models = shape.profile, shape.models
    pattern = pod_pattern(cfg.deployment) if pods is None else None
    members = pods.pods if pods is not None else frozenset()

    # A pod deleted by a scale-down is no longer listed by ownership, yet what it served in the rate window
    # is still in its counters (a range keeps a series' samples until they age out). Counting only the live
    # pods read the served rate low for a rate window after each scale-down, which asked for the next one:
    # the conversation trace at 3.5x ([0, 1020) s, seed 3) went 3 -> 2 replicas at 844 s on 17.8 requests/s,
    # read 10.6/s at 856 s and 4.8/s at 872 s, by then on 1 replica, and ended at 0.9263 @ 3.94 GPU-h;
    # reading the gone pods' rates too, 0.9981 @ 3.72 (`python -m simulations run --trace azure-conv
    # --speedup 3.5 --slice 0:1020 --seed 3 --policy scaler`, before and after c47d7d0). So rates (served
    # requests, tokens, latency) also read the pods the Deployment's ReplicaSets had and no longer have;
    # gauges (queue, running, KV cache) are the live pods' alone. A pod's ReplicaSet is its name less the
    # random suffix, as the history groups it (``reduce_history``).
    owned = pods.prefixes if pods is not None else frozenset()
    departed: set[str] = set()

    def member(pod: str, rate: bool) -> bool:
        if pattern is not None:
            return pattern.fullmatch(pod) is not None
        if pod in members:
            return True
        if rate and len(pod) > SUFFIX_LEN and pod[:-SUFFIX_LEN] in owned:
            departed.add(pod)
            return True
        return False

    def mine(kind: str, model_filter: bool = True, rate: bool = False) -> list[Sample]:
        out = []
        for s in results.get(kind, ()):
            if s.labels.get("namespace") != target.namespace or not member(s.labels.get("pod", ""), rate):
                continue
            if model_filter and models is not None and s.labels.get(prof.model_label) not in models:
                continue
            out.append(s)
        return out

    backend = prof.key
    up = {s.labels["pod"]: s.value for s in mine("up", model_filter=False)}
    presence = {s.labels["pod"] for s in _finite(mine(f"{backend}:presence"))}
    down = {p for p, v in up.items() if v != 1}
    if pods is not None:
        failed = down & pods.ready_pods
        ready_pods = set(pods.ready_pods)
    else:
        answering = (set(up) - down) | presence
        failed = down if answering else set()
        ready_pods = presence - down
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
    unconfigured: set[SignalName] = set()

    def total(kind: str, rate: bool = False) -> float | None:
        samples = _finite(mine(kind, rate=rate))
        return sum(s.value for s in samples) if samples else None

    queue = total(f"{backend}:queue")
    rates = [total(f"{backend}:throughput:{i}", rate=True) for i in range(len(prof.throughput_counters))]
    known = [r for r in rates if r is not None]
    tokens = sum(known) if known else None
    sources: dict[str, str] = {}
    if prof.backend == Backend.TRITON:
        sources["shape"] = shape.why
        sources.update({f"source:{name}": text for name, text in prof.sources})
    if prof is TRITON:
        notes["tokens"] = "inferences/s (nv_inference_count)"
    running, waiting = total(f"{backend}:running"), total(f"{backend}:waiting")
    if prof.request_types is not None:
        running, waiting, note = _request_types(mine(f"{backend}:request_types"), prof.request_types.label)
        if note:
            sources["source:waiting"] += f" ({note})"
    kv: float | None = None
    if prof.kv_blocks is not None:
        kv, note = _kv_fraction(mine(f"{backend}:kv_blocks"), prof.kv_blocks.label)
        if note:
            sources["source:kv_cache"] += f" ({note})"

    def counter_rate(name: str | None) -> float | None:
        return next((r for c, r in zip(prof.throughput_counters, rates, strict=True) if c == name), None)

    step_sum, step_count = total(f"{backend}:step:sum"), total(f"{backend}:step:count")
    step = step_sum / step_count if step_sum is not None and step_count else None
    prompt, generation = counter_rate(prof.prompt_counter), counter_rate(prof.generation_counter)
    if prof.iteration_counter is not None and prof.batch_tokens is not None:
        counted = {
            s.labels["pod"]
            for i in range(len(prof.throughput_counters))
            for s in _finite(mine(f"{backend}:throughput:{i}"))
        }
        it = iteration_rates(
            mine(f"{backend}:iterations"),
            mine(f"{backend}:batch"),
            prof.batch_tokens.label,
            ready_pods,
            counted,
        )
        if it.step_s is not None:
            step = it.step_s
            sources["source:step"] += f" ({it.step_s * 1e3:.1f} ms over {it.step_pods} pod(s))"
        if it.token_pods:
            prompt = (prompt or 0.0) + it.prompt_per_s
            generation = (generation or 0.0) + it.generation_per_s
            tokens = (tokens or 0.0) + it.prompt_per_s + it.generation_per_s
            sources["source:tokens"] += (
                f" (used for {it.token_pods} pod(s) without nv_llm_input_token_len: "
                f"{it.prompt_per_s:.0f} prompt + {it.generation_per_s:.0f} generated tokens/s)"
            )

    gpu: float | None = None
    if cfg.target_gpu_util_percent is not None:
        # Over the Ready pods' GPUs only: a loading pod's GPU idles at 0 % and the HPA formula multiplies
        # by the Ready count. One value per pod and GPU, however many jobs scrape dcgm-exporter.
        per_gpu = {
            (s.labels["pod"], s.labels.get("UUID") or s.labels.get("gpu", "")): s.value
            for s in _finite(mine("dcgm:gpu_util", model_filter=False))
            if s.labels["pod"] in ready_pods
        }
        if per_gpu:
            gpu = sum(per_gpu.values()) / len(per_gpu)
            notes["gpu"] = f"average of {len(per_gpu)} GPU(s) of Ready pods"
        elif ready_pods:
            # No sample within the staleness bound (the query's lookback) for any Ready pod: not a gap but
            # dcgm-exporter not mapping these pods (no -k, or scraped without honorLabels).
            unconfigured.add(SignalName.GPU)
            notes["gpu"] = (
                f"no {DCGM_GPU_UTIL_METRIC} series for this Deployment's Ready pods within the staleness "
                "bound: is dcgm-exporter running with pod mapping (-k) and scraped with honorLabels?"
            )

    latency: float | None = None
    attained = seen = None
    if cfg.latency_slo_s is not None:
        latency, note, idle, buckets = _latency(
            cfg.latency_metric,
            cfg.latency_quantile,
            prof.latency[cfg.latency_metric],
            backend,
            functools.partial(mine, rate=True),
        )
        if buckets is not None:
            attained, seen = attainment(buckets, cfg.latency_slo_s, window_s)
        if note:
            notes["latency"] = note
        if idle:
            no_traffic.add(SignalName.LATENCY)

    requests_per_s = total(f"{backend}:requests", rate=True)
    if departed:
        gone_pods = ", ".join(sorted(departed)[:5])
        sources["departed"] = f"rates include {len(departed)} pod(s) gone within the rate window: {gone_pods}"
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
        unconfigured=frozenset(unconfigured),
        running_requests=running,
        waiting_requests=waiting,
        kv_cache_fraction=kv,
        source_notes=sources,
        requests_per_s=requests_per_s,
        prompt_tokens_per_s=prompt,
        generation_tokens_per_s=generation,
        step_s=step,
        latency_attainment=attained,
        latency_requests=seen,
    )


@dataclass(frozen=True)
class Shape:
    """Which profile one Deployment is read with, the model label values its series must carry (None: any),
    and why (for explain)."""

    profile: BackendProfile
    models: frozenset[str] | None
    why: str


def shape_of(target: Target, results: Mapping[str, Sequence[Sample]], pods: PodStates | None = None) -> Shape:
    """``choose_profile`` for ``target`` from one refresh's results (its pods by ownership, else by name)."""
    pattern = pod_pattern(target.config.deployment) if pods is None else None
    members = pods.pods if pods is not None else frozenset()

    def of_pods(kind: str) -> list[Sample]:
        return [
            s
            for s in results.get(kind, ())
            if s.labels.get("namespace") == target.namespace
            and (
                pattern.fullmatch(s.labels.get("pod", "")) is not None
                if pattern is not None
                else s.labels.get("pod", "") in members
            )
        ]

    return Shape(*choose_profile(target.config, of_pods))


def choose_profile(
    config: ScalerConfig, of_pods: Callable[[str], list[Sample]]
) -> tuple[BackendProfile, frozenset[str] | None, str]:
    """(profile, models, why) for one Deployment: the first candidate profile whose presence metric its pods
    export (``tritonBackend: auto`` tries TensorRT-LLM, then vLLM, then generic), read from the refresh's
    presence queries, so telling the shapes apart costs no query. ``models``: the model label values its
    series must carry (the configured ``model``; for a shape whose models are those exporting its presence
    metric, those, when no model is set); None for any."""
    candidates = candidate_profiles(config)
    models = frozenset({config.model}) if config.model is not None else None

    def exporting(prof: BackendProfile) -> list[Sample]:
        return [
            s
            for s in _finite(of_pods(f"{prof.key}:presence"))
            if models is None or s.labels.get(prof.model_label) in models
        ]

    chosen, found = candidates[-1], []
    for prof in candidates:
        found = exporting(prof)
        if found:
            chosen = prof
            break
    pods = len({s.labels.get("pod") for s in found})
    if len(candidates) == 1:
        key = "tritonBackend" if config.backend == Backend.TRITON else "backend"
        why = f"{chosen.shape}: set by {key}"
    elif found and chosen is not candidates[-1]:
        why = f"{chosen.shape}: tritonBackend auto, {pods} pod(s) export {chosen.presence_metric}"
    else:
        tried = ", ".join(p.presence_metric for p in candidates[:-1])
        why = f"{chosen.shape}: tritonBackend auto, no pod exports {tried}"
    if chosen.models_from_presence and models is None and found:
        models = frozenset(s.labels.get(chosen.model_label, "") for s in found)
        why += f"; model(s) {', '.join(sorted(models))}"
    return chosen, models, why


def _request_types(samples: Sequence[Sample], label: str) -> tuple[float | None, float | None, str]:
    """(running, waiting, note) from TensorRT-LLM's request types per pod. With ``waiting`` (later
    releases): running = active, waiting = waiting. Without it (older): running = scheduled, waiting =
    active - scheduled (the executor's requests not in this iteration's batch). Worked example: active 24,
    scheduled 16 and no waiting give running 16 and waiting 8."""
    per_pod: dict[str, dict[str, float]] = defaultdict(dict)
    for s in _finite(samples):
        per_pod[s.labels.get("pod", "")][s.labels.get(label, "")] = s.value
    if not per_pod:
        return None, None, ""
    running = waiting = 0.0
    derived = 0
    for types in per_pod.values():
        active = types.get("active", 0.0)
        if "waiting" in types:
            running += active
            waiting += types["waiting"]
        else:
            derived += 1
            scheduled = types.get("scheduled", active)
            running += scheduled
            waiting += max(0.0, active - scheduled)
    note = (
        f'{derived} pod(s) export no request_type="waiting" (an older release): waiting = active - '
        "scheduled, running = scheduled"
        if derived
        else ""
    )
    return running, waiting, note


@dataclass(frozen=True)
class IterationRates:
    """What TensorRT-LLM's iteration counter and per-iteration batch gauges say: the step (one executor
    iteration, mean over the Ready pods that iterated), and the prompt and generated tokens/s of the pods
    without the token-length histograms (``token_pods`` of them)."""

    step_s: float | None
    step_pods: int
    prompt_per_s: float
    generation_per_s: float
    token_pods: int


def iteration_rates(
    iterations: Sequence[Sample],
    batch: Sequence[Sample],
    label: str,
    ready: Iterable[str],
    counted: Iterable[str] = (),
) -> IterationRates:
    """Per pod: iterations/s is the rate of the iteration counter, the step its inverse (mean over the Ready
    pods with a positive rate); a pod not in ``counted`` (no token counters: an older release) makes
    ``total_context_tokens`` x iterations/s prompt and ``generation_requests`` x iterations/s generated
    tokens/s (one token per decoding request per iteration), summed over those pods. Worked example: 50
    iterations/s, 400 context tokens and 16 decoding requests per iteration: step 1 / 50 = 20 ms, 20,000
    prompt and 800 generated tokens/s."""
    per_s: dict[str, float] = defaultdict(float)
    for s in _finite(iterations):
        per_s[s.labels.get("pod", "")] += s.value
    per_batch: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in _finite(batch):
        per_batch[s.labels.get("pod", "")][s.labels.get(label, "")] += s.value
    ready_set, counted_set = set(ready), set(counted)
    steps = [1.0 / r for pod, r in per_s.items() if r > 0 and pod in ready_set]
    prompt = generation = 0.0
    pods = 0
    for pod, rate in per_s.items():
        if pod in counted_set or pod not in per_batch:
            continue
        pods += 1
        prompt += per_batch[pod].get("total_context_tokens", 0.0) * rate
        generation += per_batch[pod].get("generation_requests", 0.0) * rate
    step = sum(steps) / len(steps) if steps else None
    return IterationRates(step, len(steps), prompt, generation, pods)


def _kv_fraction(samples: Sequence[Sample], label: str) -> tuple[float | None, str]:
    """(mean KV-cache fraction in use over the pods, note): ``fraction`` where exported, else used / max
    (older releases)."""
    per_pod: dict[str, dict[str, float]] = defaultdict(dict)
    for s in _finite(samples):
        per_pod[s.labels.get("pod", "")][s.labels.get(label, "")] = s.value
    fractions: list[float] = []
    derived = 0
    for types in per_pod.values():
        if "fraction" in types:
            fractions.append(types["fraction"])
        elif types.get("max", 0.0) > 0:
            derived += 1
            fractions.append(types.get("used", 0.0) / types["max"])
    if not fractions:
        return None, ""
    note = f"mean of {len(fractions)} pod(s), max {max(fractions):.2f}"
    if derived:
        note += f'; {derived} without kv_cache_block_type="fraction": used / max'
    return sum(fractions) / len(fractions), note


def attainment(buckets: Mapping[float, float], slo_s: float, window_s: float) -> tuple[float | None, float]:
    """(fraction of the observations at most ``slo_s``, how many there were) from bucket rates keyed by
    ``le`` in seconds over a ``window_s`` rate window; linear inside the bucket as histogram_quantile, and
    never within any bound in the +Inf bucket. Worked example: {0.5: 2, 1: 8, +Inf: 10} per second over
    60 s with an SLO of 0.75 s: (2 + 6 / 2) / 10 = 50 % of 600 requests."""
    bounds = sorted(buckets)
    counts = [buckets[b] for b in bounds]
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1] if counts else 0.0
    if not total > 0 or bounds[-1] != math.inf:
        return None, 0.0
    below_b, below_c = 0.0, 0.0
    for b, c in zip(bounds, counts, strict=True):
        if b == math.inf:
            break
        if slo_s <= b:
            inside = below_c + (c - below_c) * (slo_s - below_b) / (b - below_b) if b > below_b else c
            return inside / total, total * window_s
        below_b, below_c = b, c
    return below_c / total, total * window_s


def _latency(
    metric: LatencyMetric,
    quantile: float,
    sources: Sequence[LatencySource],
    backend: str,
    mine: Callable[[str], list[Sample]],
) -> tuple[float | None, str, bool, dict[float, float] | None]:
    """(seconds, note, no_traffic, bucket rates keyed by ``le`` in seconds when a histogram) from the first
    source with data."""
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
                return None, f"p{quantile * 100:g} of {src.metric}: no requests in the window", True, None
            in_seconds = {le * src.to_seconds: rate for le, rate in buckets.items()}
            return value * src.to_seconds, f"p{quantile * 100:g} from {src.metric}", False, in_seconds
        if src.kind == LatencyKind.SUMMARY:
            by_q: dict[float, list[float]] = defaultdict(list)
            for s in samples:
                by_q[float(s.labels.get("quantile", "nan"))].append(s.value)
            usable = sorted(q for q in by_q if q >= quantile) or sorted(by_q)[-1:]
            q = usable[0]
            return max(by_q[q]) * src.to_seconds, f"summary quantile {q:g}, max over pods", False, None
        counts = _finite(mine(kind + ":count"))
        requests_per_s = sum(s.value for s in counts)
        if requests_per_s <= 0:
            return None, "mean request duration: no requests in the window", True, None
        mean = sum(s.value for s in samples) / requests_per_s
        note = "mean request duration (enable summary_latencies for a quantile)"
        return mean * src.to_seconds, note, False, None
    return None, "", False, None


# -- history (range queries) ---------------------------------------------------------------------------
# History comes back one series per ReplicaSet (and model), not per pod, so 2,000 ScaledObjects with 240
# points each stay a few hundred thousand samples per history read: label_replace cuts the 5 random
# characters Kubernetes appends to a pod's generateName, leaving the ReplicaSet's generated prefix
# (``membership.generated_prefix``), and Python maps ReplicaSets to Deployments (by ownership, else by
# name). A Deployment has one such series, two during a rolling update. A pod named otherwise (a
# StatefulSet's ``<name>-0``) gets no prefix and is no Deployment's.
_PREFIX_FROM_POD = Relabel("pod_prefix", "$1", "pod", f"(.+){SUFFIX_CHARS}{{{SUFFIX_LEN}}}")


def _by_replicaset(spec: QuerySpec, *by: str) -> QuerySpec:
    return replace(spec, regroup=Regroup(("namespace", "pod_prefix", *by), _PREFIX_FROM_POD))


# The latency history: the histogram's rate over a minute, at every history step (windows overlap). Read a
# minute apart instead, the windows ended at :00 on one refresh and :15 the next (the range's end is aligned
# to the 15 s step): a 40 s burst fell whole into one window, then split over two, and the headroom read from
# them flipped 9, 5, 9 every 30 s on the Azure code trace, each flip a cold start (37 in 30 minutes). Aligned
# to whole minutes it was stable but blind to a burst split over two of them (0.968 attainment there). Every
# 15 s, each alignment is seen: 1.0 with 6 cold starts. Costs 4x the points of this one query.
LATENCY_WINDOW_S = 60.0


def plan_history(targets: Sequence[Target], rate_window: str) -> QueryPlan:
    """Range queries for the history of ``targets``: demand (queue, tokens), Ready replicas, the engine's
    own numbers (running, waiting, requests finished, the step histogram's sum and count), and the latency
    histogram over ``LATENCY_WINDOW_S`` windows at each history step, for ScaledObjects with a latency SLO."""
    plan = QueryPlan()
    if not targets:
        return plan
    ns = (_namespaces(targets),)
    up = QuerySpec(Op.MAX, ("up",), ns, by=("namespace", "pod"))
    plan.add_spec("history:replicas", _by_replicaset(up))
    for prof in planned_profiles(targets):
        backend = prof.key
        per_pod = ("namespace", "pod", prof.model_label)
        once = once_per_pod(per_pod, prof.series_labels, True)
        queue = QuerySpec(
            Op.SELECT, prof.queue_metrics, (*ns, *prof.queue_matchers), metric_set=True, dedupe=once
        )
        plan.add_spec(f"history:{backend}:queue", _by_replicaset(queue, prof.model_label))
        for i, counter in enumerate(prof.throughput_counters):
            once = once_per_pod(per_pod, prof.series_labels)
            rate = QuerySpec(Op.RATE, (counter,), ns, window=rate_window, dedupe=once)
            plan.add_spec(f"history:{backend}:throughput:{i}", _by_replicaset(rate, prof.model_label))
        for kind, spec in _engine_specs(prof, ns, per_pod, rate_window):
            if kind in ("kv_blocks", "batch"):
                continue  # a guard on the present only; per-iteration gauges need the per-pod product
            extra = (prof.request_types.label,) if kind == "request_types" and prof.request_types else ()
            plan.add_spec(f"history:{backend}:{kind}", _by_replicaset(spec, prof.model_label, *extra))
        metrics = {
            t.config.latency_metric
            for t in targets
            if prof in candidate_profiles(t.config) and t.config.latency_slo_s
        }
        for metric in sorted(metrics):
            src = next((x for x in prof.latency[metric] if x.kind == LatencyKind.HISTOGRAM), None)
            if src is None:
                continue
            window = f"{LATENCY_WINDOW_S:.0f}s"
            once = once_per_pod(per_pod, (*prof.series_labels, "le"))
            buckets = QuerySpec(Op.HISTOGRAM_RATE, (src.metric,), ns, per_pod, window=window, dedupe=once)
            plan.add_spec(
                f"history:{backend}:latency:{metric}",
                _by_replicaset(buckets, prof.model_label, "le"),
            )
    return plan


def history_range(now_s: float, history_s: float, step_s: float) -> tuple[float, float]:
    """(start, end) of the history range query at ``now_s``: the end aligned down to the step, so every
    scaler replica (and the simulator) asks for the same points. Worked example: now 1,000,007 s, 1 h at
    15 s: end 1,000,005 (1,000,007 - 1,000,007 mod 15), start 996,405."""
    end_s = now_s - now_s % step_s
    return end_s - history_s, end_s


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
    parts = list(series)
    if not parts:
        return None
    # In numpy: a Python loop over every point of every series was 17 % of the refresh child's profile on
    # make bench's world. np.add.at adds in index order, so each step's total is summed in series order
    # from 0.0, as the loop did: the same floats (tested against it).
    times = np.concatenate([np.asarray(s.times_s, dtype=np.float64) for s in parts])
    values = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in parts])
    finite = np.isfinite(values)
    steps, at = np.unique(times[finite], return_inverse=True)
    totals = np.zeros(len(steps))
    np.add.at(totals, at, values[finite])
    return Series(steps.tolist(), totals.tolist())


HistoryIndex = dict[tuple[str, str], dict[str, list[RangeSample]]]


def merge_history(
    held: Sequence[RangeSample], fresh: Sequence[RangeSample], start_s: float, since_s: float
) -> list[RangeSample]:
    """One range query's series over [start_s, end]: ``held``'s points in [start_s, since_s), then
    ``fresh``'s (a read of the same query from ``since_s`` on), matched by labels. What a read of the
    whole range returns, given that each step of a range query is evaluated on its own: a series that
    stopped keeps its older points, a new one has only its fresh ones. Sorted by labels, as Prometheus
    sorts a range result. Worked example (15 s steps): held 996,405..1,000,005, since 999,975, start
    996,420: held's 996,420..999,960 (239 points), then fresh's 999,975..1,000,020 (4 points)."""
    merged: dict[tuple[tuple[str, str], ...], tuple[Labels, array[float], array[float]]] = {}
    for s in held:
        lo, hi = bisect.bisect_left(s.times_s, start_s), bisect.bisect_left(s.times_s, since_s)
        if lo < hi:
            merged[tuple(sorted(s.labels.items()))] = (
                s.labels,
                array("d", s.times_s[lo:hi]),
                array("d", s.values[lo:hi]),
            )
    for s in fresh:
        key = tuple(sorted(s.labels.items()))
        if key in merged:
            merged[key][1].extend(s.times_s)
            merged[key][2].extend(s.values)
        else:
            merged[key] = (s.labels, array("d", s.times_s), array("d", s.values))
    return [RangeSample(labels, times_s, values) for _, (labels, times_s, values) in sorted(merged.items())]


def index_history(results: Mapping[str, Sequence[RangeSample]]) -> HistoryIndex:
    """The history results grouped by (namespace, ``deployment_key``) of every Deployment whose ReplicaSet
    could have made the series' prefix, so each ScaledObject reads its own few series instead of scanning
    every series of every Deployment (2,000 ScaledObjects x 8,000 series would be 16 M label lookups per
    refresh). ``reduce_history`` then keeps the prefixes that are really its own."""
    index: HistoryIndex = defaultdict(lambda: defaultdict(list))
    for kind, series in results.items():
        for s in series:
            ns, prefix = s.labels.get("namespace"), s.labels.get("pod_prefix")
            if ns is None or prefix is None:
                continue
            for key in deployment_keys(prefix):
                index[(ns, key)][kind].append(s)
    return {k: dict(v) for k, v in index.items()}


def history_key(target: Target) -> tuple[str, str]:
    """The ``index_history`` key of ``target``'s Deployment."""
    return (target.namespace, deployment_key(target.config.deployment))


def reduce_history(
    target: Target,
    results: Mapping[str, Sequence[RangeSample]],
    prefixes: frozenset[str] | None = None,
    shape: Shape | None = None,
) -> tuple[dict[Measure, Series], tuple[LatencyWindow, ...]]:
    """The history of one ScaledObject, from the history queries (all of them, or its Deployment's entry of
    ``index_history``): each measure's series, and its latency windows. ``prefixes``: its ReplicaSets'
    generated prefixes, by ownership; None matches them by name. ``shape``: the profile and models
    ``shape_of`` chose from the refresh (default: the first candidate profile, the configured model)."""
    cfg = target.config
    if shape is None:
        model = frozenset({cfg.model}) if cfg.model is not None else None
        shape = Shape(candidate_profiles(cfg)[0], model, "")
    prof, models = shape.profile, shape.models
    pattern = prefix_pattern(cfg.deployment)

    def own(prefix: str) -> bool:
        return prefix in prefixes if prefixes is not None else pattern.fullmatch(prefix) is not None

    def mine(kind: str, model_filter: bool = True) -> list[RangeSample]:
        return [
            s
            for s in results.get(kind, ())
            if s.labels.get("namespace") == target.namespace
            and own(s.labels.get("pod_prefix", ""))
            and (not model_filter or models is None or s.labels.get(prof.model_label) in models)
        ]

    backend = prof.key
    history: dict[Measure, Series] = {}
    summed = {
        Measure.QUEUE: f"history:{backend}:queue",
        Measure.RUNNING: f"history:{backend}:running",
        Measure.WAITING: f"history:{backend}:waiting",
        Measure.REQUESTS: f"history:{backend}:requests",
    }
    for i, counter in enumerate(prof.throughput_counters):
        if counter == prof.prompt_counter:
            summed[Measure.PROMPT_TOKENS] = f"history:{backend}:throughput:{i}"
        if counter == prof.generation_counter:
            summed[Measure.GENERATION_TOKENS] = f"history:{backend}:throughput:{i}"
    for measure, kind in summed.items():
        series = _sum_series(mine(kind))
        if series is not None:
            history[measure] = series
    if prof.request_types is not None:
        label = prof.request_types.label
        types = mine(f"history:{backend}:request_types")
        by_type = {
            v: _sum_series(s for s in types if s.labels.get(label) == v) for v in prof.request_types.values
        }
        running, waiting = _running_waiting(by_type)
        if running is not None and waiting is not None:
            history[Measure.RUNNING], history[Measure.WAITING] = running, waiting
    tokens = _sum_series(
        s for i in range(len(prof.throughput_counters)) for s in mine(f"history:{backend}:throughput:{i}")
    )
    if tokens is not None:
        history[Measure.TOKENS] = tokens
    # Pods that answered their scrape: the Ready replicas (a loading pod's scrape fails, up == 0).
    replicas = _sum_series(mine("history:replicas", model_filter=False))
    step = _ratio(
        _sum_series(mine(f"history:{backend}:step:sum")), _sum_series(mine(f"history:{backend}:step:count"))
    )
    if step is None and prof.iteration_counter is not None:
        # TensorRT-LLM: Ready replicas / the fleet's iterations/s, the step of a replica at the fleet's mean
        # iteration rate (20 ms for 3 replicas at 150 iterations/s).
        step = _ratio(replicas, _sum_series(mine(f"history:{backend}:iterations")))
    if step is not None:
        history[Measure.STEP_S] = step
    if replicas is not None:
        history[Measure.REPLICAS] = replicas
        history[Measure.READY] = replicas
    windows: tuple[LatencyWindow, ...] = ()
    src = next((x for x in prof.latency[cfg.latency_metric] if x.kind == LatencyKind.HISTOGRAM), None)
    if cfg.latency_slo_s is not None and src is not None:
        windows = latency_windows(
            mine(f"history:{backend}:latency:{cfg.latency_metric}"), replicas, src.to_seconds
        )
    return history, windows


def _running_waiting(by_type: Mapping[str, Series | None]) -> tuple[Series | None, Series | None]:
    """TensorRT-LLM's running and waiting history from its request types, as ``_request_types`` does per
    pod: with ``waiting``, running = active; without it (an older release), running = scheduled and waiting =
    active - scheduled, at the steps both have."""
    active, waiting, scheduled = by_type.get("active"), by_type.get("waiting"), by_type.get("scheduled")
    if active is None:
        return None, None
    if waiting is not None:
        return active, waiting
    if scheduled is None:
        return None, None
    s = dict(zip(scheduled.times_s, scheduled.values, strict=True))
    times = tuple(t for t in active.times_s if t in s)
    a = dict(zip(active.times_s, active.values, strict=True))
    return (
        Series(times, tuple(s[t] for t in times)),
        Series(times, tuple(max(0.0, a[t] - s[t]) for t in times)),
    )


def _ratio(num: Series | None, den: Series | None) -> Series | None:
    """``num / den`` at the steps where both have a value and ``den`` is positive."""
    if num is None or den is None:
        return None
    d = dict(zip(den.times_s, den.values, strict=True))
    pairs = [(t, v / d[t]) for t, v in zip(num.times_s, num.values, strict=True) if d.get(t, 0.0) > 0]
    return Series(tuple(t for t, _ in pairs), tuple(v for _, v in pairs)) if pairs else None


def latency_windows(
    series: Sequence[RangeSample], ready: Series | None, to_seconds: float, window_s: float = LATENCY_WINDOW_S
) -> tuple[LatencyWindow, ...]:
    """One ``LatencyWindow`` per point of the latency history: the bucket rates (summed over the
    Deployment's series, keyed by ``le``) times the window are the requests and their spread; the Ready
    replicas are the mean of the replica history over the window. Windows with no request are left out."""
    by_time: dict[float, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for s in series:
        try:
            le = float(s.labels.get("le", "nan")) * to_seconds
        except ValueError:
            continue
        if math.isnan(le):
            continue
        for t, v in zip(s.times_s, s.values, strict=True):
            if math.isfinite(v):
                by_time[t][le] += v * window_s
    rt = list(ready.times_s) if ready is not None else []
    rv = list(ready.values) if ready is not None else []
    out = []
    for t in sorted(by_time):
        buckets = by_time[t]
        bounds = tuple(sorted(buckets))
        if not bounds or bounds[-1] != math.inf or buckets[math.inf] <= 0:
            continue
        inside = [v for x, v in zip(rt, rv, strict=True) if t - window_s < x <= t]
        if not inside:
            continue
        cumulative = tuple(buckets[b] for b in bounds)
        out.append(LatencyWindow(t, sum(inside) / len(inside), buckets[math.inf], bounds, cumulative))
    return tuple(out)


# -- kube-state-metrics (pods by ownership, replicas, warming pods, start-up times without the API) -------
_KSM_POD_METRICS = (
    "kube_pod_created",
    "kube_pod_status_ready",
    "kube_pod_status_ready_time",
    "kube_pod_status_phase",
    "kube_pod_deletion_timestamp",
    "kube_pod_container_status_restarts_total",
)


def _owner(metric: str, kind: str, ns: str, as_label: str) -> str:
    return f'label_replace({metric}{{{ns}, owner_kind="{kind}"}}, "{as_label}", "$1", "owner_name", "(.+)")'


def plan_kube_state(targets: Sequence[Target]) -> QueryPlan:
    """Three instant queries on kube-state-metrics series, whatever the number of ScaledObjects.

    ``ksm:owners`` joins in PromQL each pod to the Deployment that owns its ReplicaSet (``kube_pod_owner``
    x ``kube_replicaset_owner``), and adds every ReplicaSet of a Deployment (for the history grouped by
    ReplicaSet) and the pods StatefulSets own (to refuse a StatefulSet by name). ``ksm:pods`` holds each
    pod's creation, Ready state and time, phase, deletion and restarts, once per pod however many
    kube-state-metrics replicas are scraped; ``ksm:deployments`` each Deployment's spec.replicas."""
    plan = QueryPlan()
    if not targets:
        return plan
    ns = _namespace_matcher(targets)
    rs_owner = _owner("kube_replicaset_owner", "Deployment", ns, "deployment")
    rs_of_deployment = f"max by (namespace, replicaset, deployment) ({rs_owner})"
    pod_owner = _owner("kube_pod_owner", "ReplicaSet", ns, "replicaset")
    pods_of_deployment = (
        f"max by (namespace, pod, replicaset, deployment) ({pod_owner}"
        f" * on (namespace, replicaset) group_left (deployment) {rs_of_deployment})"
    )
    sts_owner = f'kube_pod_owner{{{ns}, owner_kind="StatefulSet"}}'
    statefulset_pods = f"max by (namespace, pod, owner_kind, owner_name) ({sts_owner})"
    plan.add("ksm:owners", f"{pods_of_deployment} or {rs_of_deployment} or {statefulset_pods}")
    plan.add(
        "ksm:pods",
        f"max by (__name__, namespace, pod, condition, phase) ({{{_names_matcher(_KSM_POD_METRICS)}, {ns}}})",
    )
    plan.add("ksm:deployments", f"max by (namespace, deployment) (kube_deployment_spec_replicas{{{ns}}})")
    return plan


@dataclass
class KubeState:
    """The kube-state-metrics results of one refresh, indexed once for every ScaledObject."""

    namespaces: set[str] = field(default_factory=set)  # namespaces kube-state-metrics reports at all
    pods_of: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    replicasets_of: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    statefulsets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    spec_replicas: dict[tuple[str, str], int] = field(default_factory=dict)
    pod_values: dict[tuple[str, str], dict[str, float]] = field(default_factory=lambda: defaultdict(dict))


def index_kube_state(results: Mapping[str, Sequence[Sample]]) -> KubeState:
    ksm = KubeState()
    for s in results.get("ksm:owners", ()):
        ns, pod, dep = s.labels.get("namespace", ""), s.labels.get("pod"), s.labels.get("deployment")
        ksm.namespaces.add(ns)
        if pod is not None and dep is not None:
            ksm.pods_of[(ns, dep)].add(pod)
            ksm.replicasets_of[(ns, dep)].add(s.labels.get("replicaset", ""))
        elif dep is not None:
            ksm.replicasets_of[(ns, dep)].add(s.labels.get("replicaset", ""))
        elif s.labels.get("owner_kind") == "StatefulSet":
            ksm.statefulsets[ns].add(s.labels.get("owner_name", ""))
    for s in results.get("ksm:pods", ()):
        ns, pod, name = s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("__name__", "")
        ksm.namespaces.add(ns)
        if not math.isfinite(s.value):
            continue
        if name == "kube_pod_status_ready":
            name = f"{name}:{s.labels.get('condition', '')}"
        elif name == "kube_pod_status_phase":
            name = f"{name}:{s.labels.get('phase', '')}"
        ksm.pod_values[(ns, pod)][name] = s.value
    for s in results.get("ksm:deployments", ()):
        ns = s.labels.get("namespace", "")
        ksm.namespaces.add(ns)
        if math.isfinite(s.value):
            ksm.spec_replicas[(ns, s.labels.get("deployment", ""))] = int(s.value)
    return ksm


def reduce_kube_state(target: Target, ksm: KubeState, now_s: float) -> PodStates:
    """One Deployment's pods by ownership from kube-state-metrics (its namespace must be in ``ksm``)."""
    ns, name = target.namespace, target.config.deployment
    key = (ns, name)
    if key not in ksm.spec_replicas and key not in ksm.replicasets_of:
        return not_a_deployment(ns, name, frozenset(ksm.statefulsets.get(ns, ())), "kube-state-metrics")
    facts = []
    for pod in sorted(ksm.pods_of.get(key, ())):
        v = ksm.pod_values.get((ns, pod), {})
        finished = (
            v.get("kube_pod_status_phase:Succeeded", 0.0) == 1
            or v.get("kube_pod_status_phase:Failed", 0.0) == 1
        )
        if "kube_pod_deletion_timestamp" in v or finished or "kube_pod_created" not in v:
            continue
        ready = v.get("kube_pod_status_ready:true", 0.0) == 1.0
        facts.append(
            PodFacts(
                name=pod,
                created_s=v["kube_pod_created"],
                ready=ready,
                ready_at_s=v.get("kube_pod_status_ready_time") if ready else None,
                restarts=int(v.get("kube_pod_container_status_restarts_total", 0.0)),
            )
        )
    return count_pods(
        facts,
        ksm.spec_replicas.get(key),
        frozenset(generated_prefix(rs) for rs in ksm.replicasets_of.get(key, ()) if rs),
        now_s,
        target.config.cold_start_s,
    )
