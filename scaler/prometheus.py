"""The Prometheus edge: runs a ``QueryPlan`` against one Prometheus and returns ``Signals`` per target."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from scaler.query import Query, Sample, Target, plan_queries, reduce_signals
from scaler.state import Observation


class SourceError(RuntimeError):
    """Prometheus could not answer; the message says which server and which query."""


@dataclass(frozen=True)
class PrometheusAuth:
    """How to authenticate to Prometheus. The token is read from the file at each client creation, so a
    rotated service-account token is picked up."""

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
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.rate_window = rate_window
        self._auth = auth or PrometheusAuth()
        self._observe = observe
        session = requests.Session()
        if self._auth.ca_file:
            session.verify = self._auth.ca_file
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

    def query(self, q: Query) -> list[Sample]:
        """Run one instant query; raise SourceError naming the server and the query on any failure."""
        start = time.perf_counter()
        error: Exception | None = None
        try:
            raw = self._conn.custom_query(q.promql, timeout=self.timeout_s)
            return [_sample(r) for r in raw]
        except (
            requests.RequestException,
            PrometheusApiClientException,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:
            error = exc
            raise SourceError(f"prometheus {self.url}: query {q.kind} failed: {_short(exc)}") from exc
        finally:
            if self._observe is not None:
                self._observe(q.kind, time.perf_counter() - start, error)

    def collect(self, targets: Sequence[Target]) -> dict[tuple[str, str, str], Observation]:
        """Signals for every target, from one bounded batch of queries. All or nothing: if any query
        fails the whole batch raises, so a half-answered refresh can never look like lower load."""
        plan = plan_queries(targets, self.rate_window)
        results = {q.kind: self.query(q) for q in plan.queries}
        return {target_key(t): Observation(reduce_signals(t, results)) for t in targets}


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


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text[:300]
