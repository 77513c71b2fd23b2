"""activationQuery confinement: a table of queries that must pass and queries that must be refused."""

from __future__ import annotations

import pytest

from scaler.core.promql import (
    MAX_QUERY_CHARS,
    NAMESPACE_LABELS,
    QueryError,
    confine_query,
    validate_namespace_labels,
)

NS = "ml"


@pytest.mark.parametrize(
    "query",
    [
        'sum(gateway_pending_requests{namespace="ml", service="llama"})',
        'sum by (service) (rate(x_total{namespace="ml"}[1m])) > bool 0',
        'max_over_time(q{namespace="ml"}[5m:30s]) offset 1m',
        '{__name__="a", namespace="ml"}',
        'a{namespace="ml"} + on(pod) group_left b{namespace="ml"}',
        'sum without (pod) (a{namespace="ml", pod=~"llama-.*"}) * 2',
        # the KEDA HTTP add-on's interceptor runs in its own namespace and names the route it serves
        'sum(interceptor_request_concurrency{route_namespace="ml", route_name="qwen"})',
        # kube-state-metrics scraped without honorLabels: its own namespace label is renamed
        'sum(kube_pod_info{exported_namespace="ml"})',
        'sum(a{route_namespace="ml", exported_namespace="ml", namespace="ml"})',
    ],
)
def test_confined_queries_pass(query: str) -> None:
    assert confine_query(query, NS) == query


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("up", "has no label matchers"),
        ('sum(x{namespace="other"})', 'may only select namespace="ml"'),
        ('sum(x{namespace=~".*"})', 'may only select namespace="ml"'),
        ('x{namespace!="ml"}', 'may only select namespace="ml"'),
        ('x{namespace="ml", namespace="b"}', 'may only select namespace="ml"'),
        ('x{job="a"}', 'must include namespace="ml" or route_namespace="ml" or exported_namespace="ml"'),
        # a pin by one label never excuses another namespace label saying something else
        ('x{route_namespace="ml", namespace="keda"}', 'may only select namespace="ml"'),
        ('x{route_namespace="other"}', 'may only select route_namespace="ml"'),
        ('x{exported_namespace=~"ml|b"}', 'may only select exported_namespace="ml"'),
        ('x{tenant="ml"}', "must include"),  # not a namespace label unless the server says so
        ('x{namespace="ml"} or y', "has no label matchers"),
        ('x{namespace="ml"}; drop', "cannot read the query"),
        ("1 + 1", "must read at least one series"),
        ('x{namespace="ml" job="a"}', "cannot read the label matchers"),
        ('sum by (x{namespace="ml"}) (y{namespace="ml"})', "may only hold label names"),
        ("x" * (MAX_QUERY_CHARS + 1), f"at most {MAX_QUERY_CHARS}"),
    ],
)
def test_unconfined_queries_are_refused_with_the_reason(query: str, fragment: str) -> None:
    with pytest.raises(QueryError) as info:
        confine_query(query, NS)
    assert fragment in str(info.value)


def test_the_server_may_add_namespace_labels() -> None:
    labels = (*NAMESPACE_LABELS, *validate_namespace_labels(("tenant",)))
    assert confine_query('sum(q{tenant="ml"})', NS, labels)
    with pytest.raises(QueryError, match='may only select tenant="ml"'):
        confine_query('sum(q{tenant="other", namespace="ml"})', NS, labels)


@pytest.mark.parametrize("label", ["__name__", "1abc", "a-b", ""])
def test_namespace_labels_must_be_label_names(label: str) -> None:
    with pytest.raises(ValueError, match="not a label name"):
        validate_namespace_labels((label,))
