"""The simulated Prometheus: the fleet's pods discovered as scrape targets, each scraped every ``interval_s``
at its own offset, samples kept per series; and any ``QuerySpec`` (scaler/sources/spec.py) evaluated on
them, instant or as a range query, the way Prometheus evaluates its PromQL rendering.

Targets (``exposition``): every pod's ``/metrics`` (a loading pod is scraped too, and fails: vLLM binds its
port before it listens, so Prometheus records ``up`` 0 and no other series until the pod serves),
dcgm-exporter's series of every pod holding GPUs, and the gateway. A pod is a target from its creation
(the time it takes to get an IP is not modelled).
A target is scraped every 15 s at an offset fixed by a hash of its identity (Prometheus spreads targets
over the interval the same way), so what a reader sees is 0-15 s old, differently for each pod. A target
that goes away is stale from then on (Prometheus writes staleness markers when a target disappears).

Semantics, and where they are approximate:
- instant selector: the latest sample at or before ``t`` within the 5 min lookback, unless stale;
- range selector ``[w]``: samples with ``t - w <= ts <= t`` (Prometheus 2.x, as Debian's 2.42 in the tests;
  3.x excludes the left edge), staleness ignored, as Prometheus does; ``last_over_time`` takes the last;
- ``rate``: Prometheus' ``extrapolatedRate`` (extrapolation to the window edges when the gap is under 1.1
  average intervals, else half an interval; counters not extrapolated below zero). Counter resets are not
  handled because none happen: a restarted pod is a new series here;
- aggregations ``sum/max/count by``, ``label_replace`` then ``sum by`` (``Regroup``), and anchored regex
  matchers, as in Prometheus; labels that end up empty are dropped;
- range queries evaluate the instant query at ``start + i x step``, as Prometheus does.
"""

from __future__ import annotations

import bisect
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from scaler.sources.profile import DCGM_GPU_UTIL_METRIC
from scaler.sources.query import RangeSample, Sample
from scaler.sources.spec import AGGREGATIONS, Matcher, Op, QuerySpec, duration_s
from simulations.exposition import (
    GATEWAY_METRIC,
    GATEWAY_POD,
    NAMESPACE,
    Schema,
    dcgm_schema,
    gateway_schema,
    pod_id_of,
    pod_name,
    triton_schema,
    trtllm_schema,
    vllm_schema,
)
from simulations.fleet import LOADING, Fleet

LOOKBACK_S = 300.0  # Prometheus' default --query.lookback-delta
EXTRAPOLATION_THRESHOLD = 1.1  # extrapolatedRate: extrapolate to an edge closer than 1.1 average intervals
JOBS = ("pod", "dcgm", "gateway")  # a serving pod's /metrics, dcgm-exporter's series of a pod, the gateway


@dataclass(eq=False)
class ScrapeTarget:
    """One scrape target and its samples: ``rows[i]`` holds every series of ``schema`` at ``times[i]``."""

    job: str  # one of JOBS
    key: int  # pod id (0 for the gateway)
    labels: dict[str, str]  # target labels: namespace, pod
    schema: Schema
    offset: int  # scrape offset within the interval, in steps of the store's dt
    times: list[float] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    end_s: float = math.inf
    # Leading rows from failed scrapes (a loading pod): NaN but ``up`` 0. Failures only come before the pod
    # serves, so the rows from ``failed`` on hold every series.
    failed: int = 0


@dataclass
class _Selection:
    """What one spec selects of one target: the columns, and for each the group it lands in."""

    cols: np.ndarray
    groups: np.ndarray


@dataclass
class _SpecState:
    """Per spec: the selection of each target, and the groups (inner: the op's, outer: the regroup's)."""

    spec: QuerySpec
    window_s: float | None
    selections: dict[int, _Selection | None] = field(default_factory=dict)
    points: dict[float, list[Sample]] = field(default_factory=dict)  # final range-query points
    inner: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)
    inner_labels: list[dict[str, str]] = field(default_factory=list)
    outer: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)
    outer_labels: list[dict[str, str]] = field(default_factory=list)
    inner_to_outer: list[int] = field(default_factory=list)

    def group(self, labels: dict[str, str]) -> int:
        """The inner group of a series with these full labels (``__name__`` included)."""
        spec = self.spec
        if spec.op in AGGREGATIONS:
            out = {k: labels[k] for k in spec.group_labels if labels.get(k)}
        else:
            # A function drops the metric name, except last_over_time (it keeps what it selects).
            keep_name = spec.op in (Op.SELECT, Op.LAST_OVER_TIME)
            out = {k: v for k, v in labels.items() if k != "__name__" or keep_name}
        key = tuple(sorted(out.items()))
        gid = self.inner.get(key)
        if gid is None:
            gid = self.inner[key] = len(self.inner_labels)
            self.inner_labels.append(out)
            if spec.regroup is not None:
                relabelled = spec.regroup.relabel.apply(out)
                kept = {k: relabelled[k] for k in spec.regroup.by if relabelled.get(k)}
                okey = tuple(sorted(kept.items()))
                oid = self.outer.get(okey)
                if oid is None:
                    oid = self.outer[okey] = len(self.outer_labels)
                    self.outer_labels.append(kept)
                self.inner_to_outer.append(oid)
        return gid


@dataclass
class ScrapeStore:
    """Prometheus as the policies see it. ``collect`` is called every step: it discovers targets from the
    fleet and scrapes those whose offset falls in this step."""

    interval_s: float = 15.0
    retention_s: float = 4200.0  # the scaler's 1 h history, its rate window and the lookback
    keep_all: bool = False  # keep every sample (the OpenMetrics export)
    dt_s: float = 0.25
    seed: int = 0
    now_s: float = -math.inf  # the last collect
    targets: list[ScrapeTarget] = field(default_factory=list)
    _live: dict[tuple[str, int], ScrapeTarget] = field(default_factory=dict)
    _due: dict[int, list[ScrapeTarget]] = field(default_factory=dict)
    _schemas: dict[str, Schema] = field(default_factory=dict)
    _specs: dict[QuerySpec, _SpecState] = field(default_factory=dict)
    # Per (target, window) at one evaluation time: the whole row, instant or as rates, shared by the queries
    # of one refresh (they ask for different columns of the same samples).
    _rows_t: float = math.nan
    _rows: dict[tuple[int, float | None, str], np.ndarray | None] = field(default_factory=dict)
    _fleet_version: int = -1
    _collects: int = 0

    # -- scraping ------------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return max(1, round(self.interval_s / self.dt_s))

    def collect(self, fleet: Fleet, t_s: float) -> None:
        """Discover targets (pods appearing and going away) and scrape the ones due at ``t_s``."""
        self._discover(fleet, t_s)
        due = self._due.get(round(t_s / self.dt_s) % self.slots)
        if due:
            self._scrape(fleet, due, t_s)
        self._collects += 1
        if not self.keep_all and self._collects % 240 == 0:
            self._prune(t_s)

    def scrape_all(self, fleet: Fleet, t_s: float) -> None:
        """Discover and scrape every target now, whatever its offset (tests set up a moment this way)."""
        self._discover(fleet, t_s)
        self._scrape(fleet, list(self._live.values()), t_s)

    def _discover(self, fleet: Fleet, t_s: float) -> None:
        if not self._schemas:
            p = fleet.config.profile
            if p.triton_backend == "tensorrtllm":
                pod = trtllm_schema(p.name)
            elif p.backend == "triton":
                pod = triton_schema(p.name)
            else:
                pod = vllm_schema(p.name, p.max_model_len)
            self._schemas = {"pod": pod, "dcgm": dcgm_schema(p.gpus_per_replica), "gateway": gateway_schema()}
            self._start("gateway", 0, {"namespace": NAMESPACE, "pod": GATEWAY_POD})
        self.now_s = t_s
        if fleet.status_version != self._fleet_version:  # a pod started, became Ready, drained or left
            self._fleet_version = fleet.status_version
            pods = fleet.pod_id[fleet.gpu_slots()]  # every pod that exists holds GPUs
            self._sync("pod", pods, t_s)
            self._sync("dcgm", pods, t_s)

    def _scrape(self, fleet: Fleet, targets: list[ScrapeTarget], t_s: float) -> None:
        by_job: dict[str, list[ScrapeTarget]] = {}
        for tg in targets:
            by_job.setdefault(tg.job, []).append(tg)
        up = self._schemas["pod"].by_name["up"][0]
        for job, tgs in by_job.items():
            if job == "gateway":
                rows = np.array([[float(len(fleet.gateway))]])
            else:
                slots = np.array([fleet.slot_of(tg.key) for tg in tgs], dtype=np.int64)
                rows = fleet.pod_rows(slots) if job == "pod" else fleet.gpu_rows(slots)
                if job == "pod":
                    loading = fleet.status[slots] == LOADING  # the scrape fails: up 0, nothing else
                    if loading.any():
                        rows[loading] = np.nan
                        rows[loading, up] = 0.0
            for i, tg in enumerate(tgs):
                if job == "pod" and rows[i, up] == 0.0:
                    assert tg.failed == len(tg.rows), "a pod fails its scrapes only before it serves"
                    tg.failed += 1
                tg.times.append(t_s)
                tg.rows.append(rows[i])

    def _start(self, job: str, key: int, labels: dict[str, str]) -> None:
        offset = zlib.crc32(f"{job}/{key}/{self.seed}".encode()) % self.slots
        tg = ScrapeTarget(job, key, labels, self._schemas[job], offset)
        self.targets.append(tg)
        self._live[(job, key)] = tg
        self._due.setdefault(offset, []).append(tg)

    def _sync(self, job: str, pods: np.ndarray, t_s: float) -> None:
        live = {k for j, k in self._live if j == job}
        now = set(pods.tolist())
        for key in now - live:
            self._start(job, key, {"namespace": NAMESPACE, "pod": pod_name(key)})
        for key in live - now:
            tg = self._live.pop((job, key))
            tg.end_s = t_s
            self._due[tg.offset].remove(tg)

    def _prune(self, t_s: float) -> None:
        """Forget what no query can reach any more (older than ``retention_s``)."""
        cutoff = t_s - self.retention_s
        self.targets = [tg for tg in self.targets if tg.end_s > cutoff]
        for tg in self.targets:
            i = bisect.bisect_left(tg.times, cutoff)
            if i > 0:
                del tg.times[:i], tg.rows[:i]
                tg.failed = max(0, tg.failed - i)
        for state in self._specs.values():
            alive = {id(tg) for tg in self.targets}
            state.selections = {k: v for k, v in state.selections.items() if k in alive}
            state.points = {t: v for t, v in state.points.items() if t > cutoff}

    # -- queries -------------------------------------------------------------------------------------
    def _state(self, spec: QuerySpec) -> _SpecState:
        state = self._specs.get(spec)
        if state is None:
            window = duration_s(spec.window) if spec.window is not None else None
            state = self._specs[spec] = _SpecState(spec, window)
        return state

    def _selection(self, state: _SpecState, tg: ScrapeTarget) -> _Selection | None:
        sel = state.selections.get(id(tg), False)
        if sel is not False:
            return sel  # type: ignore[return-value]
        cols: list[int] = []
        groups: list[int] = []
        for name in state.spec.metrics:
            for c in tg.schema.by_name.get(name, ()):
                column = tg.schema.columns[c]
                labels = {**tg.labels, **dict(column.labels), "__name__": name}
                if all(m.matches(labels.get(m.label, "")) for m in state.spec.matchers):
                    cols.append(c)
                    groups.append(state.group(labels))
        out = (
            _Selection(np.asarray(cols, dtype=np.int64), np.asarray(groups, dtype=np.int64)) if cols else None
        )
        state.selections[id(tg)] = out
        return out

    def query(self, spec: QuerySpec, t_s: float) -> list[Sample]:
        """The instant query ``render(spec)`` at ``t_s``."""
        state = self._state(spec)
        values: list[np.ndarray] = []
        groups: list[np.ndarray] = []
        window = state.window_s
        for tg in self.targets:
            # Stale for an instant selector; no sample left in the window for a range one.
            if not tg.times or tg.end_s <= t_s - (window or 0.0) or (window is None and tg.end_s <= t_s):
                continue
            sel = self._selection(state, tg)
            if sel is None:
                continue
            row = self._row(tg, window, state.spec.op, t_s)
            if row is not None:
                v = row[sel.cols]
                present = ~np.isnan(v)  # NaN: absent from a failed scrape (the pods never export NaN)
                values.append(v if present.all() else v[present])
                groups.append(sel.groups if present.all() else sel.groups[present])
        if not values:
            return []
        return self._aggregate(state, np.concatenate(values), np.concatenate(groups))

    def _row(self, tg: ScrapeTarget, window_s: float | None, op: Op, t_s: float) -> np.ndarray | None:
        """Every series of ``tg`` at ``t_s``: the instant selection, ``rate`` over ``window_s``, or with
        ``last_over_time`` the last sample within it, with ``avg_over_time`` their mean; None when it has no
        value then (stale, no sample in the window, or fewer than two for a rate)."""
        if t_s != self._rows_t:
            self._rows_t, self._rows = t_s, {}
        last = op == Op.LAST_OVER_TIME
        key = (id(tg), window_s, op.value if op in (Op.LAST_OVER_TIME, Op.SUM_AVG_OVER_TIME) else "")
        if key in self._rows:
            return self._rows[key]
        times = tg.times
        out: np.ndarray | None = None
        if window_s is None:
            i = bisect.bisect_right(times, t_s) - 1
            if t_s < tg.end_s and i >= 0 and times[i] >= t_s - LOOKBACK_S:
                out = tg.rows[i]
        elif last:
            i = bisect.bisect_right(times, t_s) - 1
            if i >= 0 and times[i] >= t_s - window_s:  # staleness does not end a range selection
                out = tg.rows[i]
        elif op == Op.SUM_AVG_OVER_TIME:
            lo = bisect.bisect_left(times, t_s - window_s)
            hi = bisect.bisect_right(times, t_s)
            if hi > lo:
                inside = np.vstack([tg.rows[i] for i in range(lo, hi)])
                seen = ~np.isnan(inside)
                counts = seen.sum(axis=0)
                mean = np.where(seen, inside, 0.0).sum(axis=0) / np.maximum(counts, 1)
                out = np.where(counts > 0, mean, np.nan)
        else:
            lo = max(bisect.bisect_left(times, t_s - window_s), tg.failed)
            hi = bisect.bisect_right(times, t_s) - 1
            if hi - lo >= 1:
                out = extrapolated_rate(
                    tg.rows[lo], tg.rows[hi], times[lo], times[hi], hi - lo + 1, t_s, window_s
                )
        self._rows[key] = out
        return out

    def _aggregate(self, state: _SpecState, values: np.ndarray, groups: np.ndarray) -> list[Sample]:
        n = len(state.inner_labels)
        present = np.bincount(groups, minlength=n) > 0
        op = state.spec.op
        if op == Op.MAX:
            total = np.full(n, -np.inf)
            np.maximum.at(total, groups, values)
        elif op == Op.COUNT:
            total = np.bincount(groups, minlength=n).astype(np.float64)
        else:  # sums, and the identity (one series per group) for SELECT and RATE
            total = np.bincount(groups, weights=values, minlength=n)
        keep = np.flatnonzero(present)
        if state.spec.regroup is None:
            return [Sample(state.inner_labels[g], float(total[g])) for g in keep.tolist()]
        outer = np.asarray(state.inner_to_outer, dtype=np.int64)[keep]
        m = len(state.outer_labels)
        sums = np.bincount(outer, weights=total[keep], minlength=m)
        return [Sample(state.outer_labels[o], float(sums[o])) for o in np.unique(outer).tolist()]

    def query_range(self, spec: QuerySpec, start_s: float, end_s: float, step_s: float) -> list[RangeSample]:
        """The range query ``render(spec)`` over [start_s, end_s] at ``step_s``; a point evaluated at or
        before the last collect never changes, so it is kept and not evaluated again."""
        n = math.floor((end_s - start_s) / step_s + 1e-9) + 1
        points = self._state(spec).points
        series: dict[int, tuple[dict[str, str], list[float], list[float]]] = {}
        for i in range(max(0, n)):
            t = start_s + i * step_s
            samples = points.get(t)
            if samples is None:
                samples = self.query(spec, t)
                if t <= self.now_s:
                    points[t] = samples
            for s in samples:
                # A group's labels are one dict, shared by every point (``_SpecState``): its id is the key.
                skey = id(s.labels)
                entry = series.get(skey)
                if entry is None:
                    entry = series[skey] = (dict(s.labels), [], [])
                entry[1].append(t)
                entry[2].append(s.value)
        return [RangeSample(labels, times, values) for labels, times, values in series.values()]

    # -- what the baselines read ---------------------------------------------------------------------
    @property
    def last(self) -> PrometheusView:
        """What an instant query at the last collect shows per pod (the baselines' reads)."""
        return self.view(self.now_s)

    def view(self, t_s: float) -> PrometheusView:
        def per_pod(spec: QuerySpec) -> dict[int, float]:
            return {pod_id_of(s.labels["pod"]): s.value for s in self.query(spec, t_s) if "pod" in s.labels}

        waiting = per_pod(_BY_POD[0])
        running = per_pod(_BY_POD[1])
        gpu_sum, gpu_count = per_pod(_BY_POD[2]), per_pod(_BY_POD[3])
        pods = sorted(set(waiting) | set(running))
        gpu_pods = sorted(gpu_sum)
        gateway = self.query(_BY_POD[4], t_s)
        return PrometheusView(
            t_s=t_s,
            pods=np.array(pods, dtype=np.int64),
            waiting=np.array([waiting.get(p, 0.0) for p in pods]),
            running=np.array([running.get(p, 0.0) for p in pods]),
            gpu_pods=np.array(gpu_pods, dtype=np.int64),
            # prometheus-adapter's usual Pods rule: the average over the pod's GPUs.
            gpu_util_percent=np.array([gpu_sum[p] / gpu_count[p] for p in gpu_pods]),
            gateway_queue=gateway[0].value if gateway else 0.0,
        )


@dataclass(frozen=True)
class PrometheusView:
    """Per pod (by pod id), the latest scraped values an instant query returns at ``t_s`` (0-15 s old)."""

    t_s: float
    pods: np.ndarray
    waiting: np.ndarray
    running: np.ndarray
    gpu_pods: np.ndarray
    gpu_util_percent: np.ndarray
    gateway_queue: float


_NS = (Matcher("namespace", "=", NAMESPACE),)
_BY_POD = (
    QuerySpec(Op.SUM, ("vllm:num_requests_waiting",), _NS, ("pod",)),
    QuerySpec(Op.SUM, ("vllm:num_requests_running",), _NS, ("pod",)),
    QuerySpec(Op.SUM, (DCGM_GPU_UTIL_METRIC,), _NS, ("pod",)),
    QuerySpec(Op.COUNT, (DCGM_GPU_UTIL_METRIC,), _NS, ("pod",)),
    QuerySpec(Op.SUM, (GATEWAY_METRIC,), _NS),
)


def extrapolated_rate(
    first: np.ndarray,
    last: np.ndarray,
    t_first: float,
    t_last: float,
    samples: int,
    t_s: float,
    window_s: float,
) -> np.ndarray:
    """Prometheus' ``rate`` (promql/functions.go ``extrapolatedRate``, counter, no resets) of series whose
    first and last samples in the window ``[t_s - window_s, t_s]`` are ``first`` and ``last``.

    Worked example: the window [40, 100] s (1m at 100 s), samples at 45, 60, 75, 90 s of 0, 15, 30, 45: an
    increase of 45 over 45 s sampled, 15 s apart. The end is 10 s after the last sample, under 1.1 x 15 =
    16.5 s, so it is extrapolated to; the start is 5 s before the first sample, but the counter was 0 there,
    so not further back: 45 x (45 + 0 + 10) / 45 / 60 s = 0.917/s.
    """
    increase = last - first
    sampled = t_last - t_first
    average = sampled / (samples - 1)
    threshold = average * EXTRAPOLATION_THRESHOLD
    to_start = np.full(len(increase), t_first - (t_s - window_s))
    # A counter cannot go below zero: never extrapolate further back than where the slope reaches it.
    rising = (increase > 0) & (first >= 0)
    to_zero = np.divide(sampled * first, increase, out=np.full(len(increase), np.inf), where=rising)
    to_start = np.minimum(to_start, to_zero)
    to_end = t_s - t_last
    span = sampled + np.where(to_start < threshold, to_start, average / 2)
    span = span + (to_end if to_end < threshold else average / 2)
    out: np.ndarray = increase * (span / sampled) / window_s
    return out
