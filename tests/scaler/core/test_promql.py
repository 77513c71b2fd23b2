"""activationQuery confinement: a table of queries that must pass and queries that must be refused."""

from __future__ import annotations

import pytest

from scaler.core.promql import MAX_QUERY_CHARS, QueryError, confine_query

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
        ('x{job="a"}', 'must include namespace="ml"'),
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
