"""The Prometheus edge: runs a ``QueryPlan`` against one Prometheus and returns ``Signals`` per target."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from scaler.core.promql import NAMESPACE_LABELS, confine_query
from scaler.core.signals import Measure, Signals
from scaler.core.state import LatencyWindow, Observation, ReplicaSource, Series, State
from scaler.core.target import Target
from scaler.sources.kube import KubernetesReader
from scaler.sources.membership import PodStates
from scaler.sources.profile import candidate_profiles
from scaler.sources.query import (
    HistoryIndex,
    Query,
    RangeSample,
    Sample,
    Shape,
    history_key,
    history_range,
    index_history,
    index_instant,
    index_kube_state,
    merge_history,
    plan_history,
    plan_kube_state,
    plan_queries,
    reduce_history,
    reduce_kube_state,
    reduce_signals,
    shape_of,
)
from scaler.sources.spec import duration_s

# Demand history read for forecasts, stabilisation and idle time; one hour shows the gaps between bursts.
HISTORY_S = 3600.0
HISTORY_STEP_S = 15.0
# Steps of the last history read read again at the next one: samples of a slow scrape (up to its timeout)
# reach Prometheus after the step they belong to was read. Two steps of 15 s cover a 30 s lag.
REREAD_STEPS = 2
# The activation query's recent values, for the arrival rate while at zero.
ACTIVATION_WINDOW_S = 60.0
# Targets without samples whose reduction is kept (_without_samples): 8x make bench's 2,000.
MAX_UNSAMPLED = 16_384


log = logging.getLogger("scaler.sources.prometheus")
_T = TypeVar("_T")


class SourceError(RuntimeError):
    """Prometheus could not answer; the message says which server and which query."""


@dataclass(frozen=True)
class PrometheusAuth:
    """How to authenticate to Prometheus. The token and password files are re-read before each query, so
    a rotated service-account token is picked up without a restart."""

    bearer_token_file: str | None = None
    basic_user: str | None = None
    basic_password_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False

    def headers(self) -> dict[str, str]:
        if self.bearer_token_file:
            with open(self.bearer_token_file, encoding="utf-8") as f:
                return {"Authorization": f"Bearer {f.read().strip()}"}
        return {}

    def basic(self) -> tuple[str, str] | None:
        if self.basic_user is None:
            return None
        password = ""
        if self.basic_password_file:
            with open(self.basic_password_file, encoding="utf-8") as f:
                password = f.read().strip()
        return (self.basic_user, password)


# Called after each query with (query kind, seconds, error or None): feeds the scaler's own metrics.
QueryObserver = Callable[[str, float, Exception | None], None]


@dataclass
class _HistoryRead:
    """One read of the history range queries and the per-Deployment reductions made from it since."""

    namespaces: frozenset[str]
    backends: frozenset[str]
    end_s: float
    index: HistoryIndex
    # (profile key, latency metric) of the targets with a latency SLO: each adds a latency history query
    latencies: frozenset[tuple[str, str]] = frozenset()
    # What was read (by query kind) and the queries that read it: the next step appends to it.
    results: dict[str, list[RangeSample]] = field(default_factory=dict)
    queries: tuple[tuple[str, str, float | None], ...] = ()
    # By (profile key, models, latency metric): the reduction of a Deployment with nothing in the hour.
    empty: dict[
        tuple[str, frozenset[str] | None, str], tuple[dict[Measure, Series], tuple[LatencyWindow, ...]]
    ] = field(default_factory=dict)
    # By (namespace, deployment, profile key, models, ReplicaSet prefixes, latency metric).
    reduced: dict[
        tuple[str, str, str, frozenset[str] | None, frozenset[str] | None, str],
        tuple[dict[Measure, Series], tuple[LatencyWindow, ...]],
    ] = field(default_factory=dict)

    def covers(
        self,
        namespaces: frozenset[str],
        backends: frozenset[str],
        end_s: float,
        latencies: frozenset[tuple[str, str]] = frozenset(),
    ) -> bool:
        return (
            end_s == self.end_s
            and namespaces <= self.namespaces
            and backends <= self.backends
            and latencies <= self.latencies
        )


class PrometheusSource:
    """Batch reader for one Prometheus server. Thread-safe for sequential use by one refresher task."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        rate_window: str = "1m",
        auth: PrometheusAuth | None = None,
        observe: QueryObserver | None = None,
        history_s: float = HISTORY_S,
        history_step_s: float = HISTORY_STEP_S,
        kube: KubernetesReader | None = None,
        clock: Callable[[], float] = time.time,
        staleness_s: float = 60.0,
        namespace_labels: tuple[str, ...] = NAMESPACE_LABELS,
    ) -> None:
        self.url = url
        # A GPU with no sample within the staleness bound is absent, not a gap (see reduce_signals).
        self.staleness_s = staleness_s
        self.namespace_labels = namespace_labels
        self.history_s = history_s
        self.history_step_s = history_step_s
        self._kube = kube
        self._clock = clock
        self._history_read: _HistoryRead | None = None
        # Per target key, the (Target, shape, signals, observation) of a target with no samples
        # (_without_samples). The observation is held only while there is nothing to read at all (no
        # history in the last hour, no activationQuery either), and returned again, the same object, while
        # its Target and notes are the same: the contract of ``Source.collect`` that lets the refresh
        # restamp its last decision instead of deciding again (``collect_and_decide``).
        self._unsampled: dict[tuple[str, str, str], tuple[Target, Shape, Signals, Observation | None]] = {}
        # Queries sent by the last collect (the scaler's llm_scaler_queries_per_refresh).
        self.queries_last_collect = 0
        self._queries_in_collect = 0
        self.timeout_s = timeout_s
        self.rate_window = rate_window
        self._auth = auth or PrometheusAuth()
        self._observe = observe
        session = requests.Session()
        # The environment (HTTPS_PROXY/NO_PROXY, REQUESTS_CA_BUNDLE) is read once, here: requests reads it
        # again before every query otherwise, 26 % of the refresh child's profile on make bench's world
        # (13-15 queries every 2 s; an ad-hoc cProfile). A changed environment needs a restart anyway.
        session.proxies.update(requests.utils.get_environ_proxies(url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.trust_env = False
        if self._auth.ca_file:
            session.verify = self._auth.ca_file
        if self._auth.insecure_skip_verify:  # PrometheusConnect ignores disable_ssl for a session given
            session.verify = False
        # No retries inside a refresh: the next refresh is the retry, and a slow retry would hold it up.
        self._conn = PrometheusConnect(
            url=url,
            headers=self._auth.headers(),
            disable_ssl=self._auth.insecure_skip_verify,
            retry=Retry(total=0),
            auth=self._auth.basic(),
            session=session,
            timeout=timeout_s,
        )
        if self._auth.ca_file:
            self._conn._session.verify = self._auth.ca_file

    def _credentials(self) -> None:
        # Re-read the token and password files before each query: a projected service-account token is
        # rotated on disk (hourly) while the scaler runs, and the source lives as long as the process.
        self._conn.headers = self._auth.headers()
        self._conn.auth = self._auth.basic()

    def query(self, q: Query) -> list[Sample]:
        """Run one instant query; raise SourceError naming the server and the query on any failure."""
        return self._send(
            q, lambda: [_sample(r) for r in self._conn.custom_query(q.promql, timeout=self.timeout_s)]
        )

    def query_range(self, q: Query, start_s: float, end_s: float, step_s: float) -> list[RangeSample]:
        """Run one range query; raise SourceError naming the server and the query on any failure."""

        def send() -> list[RangeSample]:
            raw = self._conn.custom_query_range(
                q.promql,
                start_time=dt.datetime.fromtimestamp(start_s, tz=dt.UTC),
                end_time=dt.datetime.fromtimestamp(end_s, tz=dt.UTC),
                step=f"{step_s:g}s",
                params={"timeout": f"{self.timeout_s:g}s"},
            )
            return [_range_sample(r) for r in raw]

        return self._send(q, send)

    def _send(self, q: Query, send: Callable[[], list[_T]]) -> list[_T]:
        """Time, count and observe one query; every failure becomes a SourceError naming server and query."""
        start = time.perf_counter()
        error: Exception | None = None
        try:
            self._credentials()
            return send()
        except (
            requests.RequestException,
            PrometheusApiClientException,
            OSError,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:
            error = exc
            raise SourceError(f"prometheus {self.url}: query {q.kind} failed: {_short(exc)}") from exc
        finally:
            self._queries_in_collect += 1
            if self._observe is not None:
                self._observe(q.kind, time.perf_counter() - start, error)

    def collect(self, targets: Sequence[Target]) -> dict[tuple[str, str, str], Observation]:
        """Observations for every target, from one bounded batch of queries. All or nothing: if any query
        fails the whole batch raises, so a half-answered refresh can never look like lower load."""
        now_s = self._clock()
        self._queries_in_collect = 0
        plan = plan_queries(targets, self.rate_window, gpu_lookback=f"{self.staleness_s:g}s")
        results = {q.kind: self.query(q) for q in plan.queries}
        history = self._history(targets, now_s)
        pods, sources, pod_notes = self._pod_states(targets, now_s)
        activation = self._activation(targets, now_s)
        self.queries_last_collect = self._queries_in_collect
        self._queries_in_collect = 0
        instant = index_instant(results)
        window_s = duration_s(self.rate_window)  # once, not per target (it parses the text)
        out: dict[tuple[str, str, str], Observation] = {}
        for t in targets:
            key = target_key(t)
            states = pods.get(key)
            replica_source = sources.get(key, ReplicaSource.METRICS)
            if states is not None and states.error is not None:
                out[key] = Observation(
                    Signals(None, None), State(replica_source=replica_source), states.error
                )
                continue
            # Its own few samples (the index's superset), and the shape read from them once: shape_of
            # over the whole results scanned every pod's presence samples for each of 2,000 targets.
            samples = instant.samples_for(t, states)
            unsampled = states is None and not samples
            if unsampled:
                shape, signals = self._without_samples(t, key, window_s)
            else:
                self._unsampled.pop(key, None)
                shape = shape_of(t, samples, states)
                signals = reduce_signals(t, samples, states, window_s=window_s, shape=shape)
            # History changes once per step (15 s), refreshes come every 2 s: reduce once per step and
            # hand every refresh the same Series objects.
            prefixes = states.prefixes if states is not None else None
            latency = t.config.latency_metric.value if t.config.latency_slo_s is not None else ""
            hkey = (t.namespace, t.config.deployment, shape.profile.key, shape.models, prefixes, latency)
            if hkey not in history.reduced:
                mine = history.index.get(history_key(t), {})
                if mine:
                    history.reduced[hkey] = reduce_history(t, mine, prefixes, shape)
                else:
                    # Nothing in the hour: the same empty reduction for every Deployment of this shape.
                    # 1,950 of make bench's 2,000 read none, 0.1 s at every history step (ad-hoc timing).
                    ekey = (shape.profile.key, shape.models, latency)
                    if ekey not in history.empty:
                        history.empty[ekey] = reduce_history(t, {}, prefixes, shape)
                    history.reduced[hkey] = history.empty[ekey]
            measured, windows = history.reduced[hkey]
            quiet = (
                unsampled
                and t.config.activation_query is None
                and not windows
                and not any(len(series) for series in measured.values())
            )
            if quiet:
                held = self._unsampled[key][3]  # the entry _without_samples just checked for this Target
                if held is not None and held.state.notes == pod_notes.get(key, {}):
                    out[key] = held
                    continue
            notes: dict[str, str] = dict(pod_notes.get(key, {}))
            state = State(
                history=measured,
                latency_windows=windows,
                notes=notes,
                replica_source=replica_source,
                rate_window_s=window_s,
            )
            if states is not None:
                signals = _with_pod_counts(signals, states)
                state = replace(
                    state,
                    warming_replicas=len(states.warming_ages_s),
                    warming_ages_s=states.warming_ages_s,
                    cold_start_samples_s=states.cold_starts_s,
                    notes={**notes, **states.notes},
                )
            if t.config.activation_query is not None:
                value, series = activation.get((t.namespace, t.config.activation_query), (None, None))
                state = replace(state, activation_value=value, activation_history=series)
            out[key] = Observation(signals, state)
            if unsampled:
                self._unsampled[key] = (t, shape, signals, out[key] if quiet else None)
        return out

    def _without_samples(
        self, t: Target, key: tuple[str, str, str], window_s: float
    ) -> tuple[Shape, Signals]:
        """``shape_of`` and ``reduce_signals`` of a target with no sample and no pods known by ownership
        (a Deployment at zero, or not exporting yet), reused while its Target is the same object: both are
        functions of the target and the samples alone, and a target with none reads the same every
        refresh. 1,950 of make bench's 2,000 ScaledObjects have no pods; reducing nothing took 70-90 us
        each, 0.15 s of every 2 s refresh (ad-hoc timing, not a repo command)."""
        held = self._unsampled.get(key)
        if held is not None and held[0] is t:  # window_s is the source's own: fixed for its life
            return held[1], held[2]
        shape = shape_of(t, {}, None)
        signals = reduce_signals(t, {}, None, window_s=window_s, shape=shape)
        if len(self._unsampled) >= MAX_UNSAMPLED:  # names a client invents cannot grow it without bound
            self._unsampled.clear()
        self._unsampled[key] = (t, shape, signals, None)
        return shape, signals

    # -- the parts of a collect ---------------------------------------------------------------------
    def _history(self, targets: Sequence[Target], now_s: float) -> _HistoryRead:
        """Demand and replica history by (namespace, deployment), re-read once per history step (aligned,
        so every scaler replica asks Prometheus the same range and gets the same points)."""
        start_s, end_s = history_range(now_s, self.history_s, self.history_step_s)
        namespaces = frozenset(t.namespace for t in targets)
        # Per profile: a Triton ScaledObject reads one shape, or all three with tritonBackend auto.
        backends = frozenset(p.key for t in targets for p in candidate_profiles(t.config))
        latencies = frozenset(
            (p.key, t.config.latency_metric.value)
            for t in targets
            if t.config.latency_slo_s
            for p in candidate_profiles(t.config)
        )
        last = self._history_read
        # A read that covered these namespaces and backends in this step serves any subset of them: the
        # first fetches of newly registered ScaledObjects (a batch each) then reuse the refresh's read
        # instead of re-reading an hour of history per batch (with a full hour in Prometheus, that made
        # registering 2,000 ScaledObjects take 12.7 s in `make bench`).
        if last is not None and last.covers(namespaces, backends, end_s, latencies):
            return last
        plan = plan_history(targets, self.rate_window)
        queries = tuple((q.kind, q.promql, q.step_s) for q in plan.queries)
        # The same queries one or more steps on: read only the steps since the last read, and the last
        # REREAD_STEPS of it again (a sample scraped before a step's end can reach Prometheus after the step
        # was read), and keep the rest of the held hour. Re-reading the whole hour every step cost
        # Prometheus 0.41 s of CPU and this process 0.27 s on make bench's world, every 15 s (ad-hoc timing).
        since_s = start_s
        if (
            last is not None
            and last.queries == queries
            and all(step is None for _, _, step in queries)
            and start_s < last.end_s < end_s
        ):
            since_s = max(start_s, last.end_s - REREAD_STEPS * self.history_step_s)
        results = {
            q.kind: self.query_range(q, since_s, end_s, q.step_s or self.history_step_s) for q in plan.queries
        }
        if since_s > start_s:
            assert last is not None
            results = {
                kind: merge_history(last.results.get(kind, ()), fresh, start_s, since_s)
                for kind, fresh in results.items()
            }
        self._history_read = _HistoryRead(
            namespaces, backends, end_s, index_history(results), latencies, results=results, queries=queries
        )
        return self._history_read

    def _pod_states(
        self, targets: Sequence[Target], now_s: float
    ) -> tuple[
        dict[tuple[str, str, str], PodStates],
        dict[tuple[str, str, str], ReplicaSource],
        dict[tuple[str, str, str], dict[str, str]],
    ]:
        """Each target's pods by ownership: from the Kubernetes API, else (per namespace: one namespace
        without the RoleBinding must not send every other to the fallback) from kube-state-metrics, else
        matched by name, which is a guess and says so."""
        states: dict[tuple[str, str, str], PodStates] = {}
        sources: dict[tuple[str, str, str], ReplicaSource] = {}
        notes: dict[tuple[str, str, str], dict[str, str]] = {}
        rest = list(targets)
        failed: dict[str, str] = {}
        if self._kube is not None:
            read, failed = self._kube.pod_states(targets, now_s)
            for key, s in read.items():
                states[key], sources[key] = s, ReplicaSource.KUBERNETES
            for namespace, why in sorted(failed.items()):
                log.warning("Kubernetes API unreadable in namespace %s, falling back: %s", namespace, why)
            rest = [t for t in targets if t.namespace in failed]
        if not rest:
            return states, sources, notes
        plan = plan_kube_state(rest)
        ksm = index_kube_state({q.kind: self.query(q) for q in plan.queries})
        for t in rest:
            key = target_key(t)
            why = f"Kubernetes API unreadable ({failed[t.namespace]}); " if t.namespace in failed else ""
            if t.namespace in ksm.namespaces:
                states[key], sources[key] = reduce_kube_state(t, ksm, now_s), ReplicaSource.KUBE_STATE_METRICS
                if why:
                    notes[key] = {"replicas": why + "from kube-state-metrics"}
                continue
            sources[key] = ReplicaSource.METRICS
            notes[key] = {
                "replicas": why + "no Kubernetes API access and no kube-state-metrics series in namespace "
                f"{t.namespace}: warming replicas are not seen and cold start is the coldStartSeconds prior",
                "pods": "guessing: without the Kubernetes API or kube-state-metrics the Deployment's pods "
                "are matched by the names Kubernetes generates (<replicaset>-<5 random>), which cannot tell "
                "them from another workload's pods named the same way",
            }
        return states, sources, notes

    def _activation(
        self, targets: Sequence[Target], now_s: float
    ) -> dict[tuple[str, str], tuple[float | None, Series | None]]:
        """Each distinct activationQuery: its value now (sum over series) and its recent values."""
        out: dict[tuple[str, str], tuple[float | None, Series | None]] = {}
        for t in targets:
            q = t.config.activation_query
            if q is None or (t.namespace, q) in out:
                continue
            # Checked at the edge already (INVALID_ARGUMENT); checked again here because this is where the
            # text reaches Prometheus.
            promql = f"sum({confine_query(q, t.namespace, self.namespace_labels)})"
            now_samples = self.query(Query("activation", promql))
            value = next((s.value for s in now_samples if math.isfinite(s.value)), None)
            step_s = min(self.history_step_s, 5.0)
            ranged = self.query_range(
                Query("activation:range", promql), now_s - ACTIVATION_WINDOW_S, now_s, step_s
            )
            series = Series(ranged[0].times_s, ranged[0].values) if ranged and ranged[0].times_s else None
            out[(t.namespace, q)] = (value, series)
        return out


def _with_pod_counts(signals: Signals, states: PodStates) -> Signals:
    """Replica counts from the pod objects: current includes warming pods, ready only Ready ones."""
    return replace(signals, current_replicas=states.total, ready_replicas=states.ready)


def target_key(t: Target) -> tuple[str, str, str]:
    """Identity of one trigger: (namespace, ScaledObject, Deployment)."""
    return (t.namespace, t.name, t.config.deployment)


def _sample(raw: dict[str, object]) -> Sample:
    metric = raw.get("metric", {})
    value = raw.get("value")
    if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"unexpected result shape: {str(raw)[:120]}")
    v = float(value[1])  # Prometheus sends "NaN", "+Inf" as strings; float() parses them
    return Sample(
        labels={str(k): str(val) for k, val in metric.items()}, value=v if not math.isnan(v) else math.nan
    )


def _range_sample(raw: dict[str, object]) -> RangeSample:
    metric = raw.get("metric", {})
    values = raw.get("values")
    if not isinstance(metric, dict) or not isinstance(values, list):
        raise ValueError(f"unexpected range result shape: {str(raw)[:120]}")
    times_s, kept = array("d"), array("d")
    for t, v in values:
        value = float(v)
        if math.isfinite(value):
            times_s.append(float(t))
            kept.append(value)
    return RangeSample(labels={str(k): str(val) for k, val in metric.items()}, times_s=times_s, values=kept)


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text[:300]
