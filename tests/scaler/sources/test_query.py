"""PromQL planning and the pure reduction of query results into Signals."""

from __future__ import annotations

import math

import pytest

from scaler.core.config import parse_metadata
from scaler.core.signals import SignalName
from scaler.core.state import Series
from scaler.core.target import Target
from scaler.sources.query import (
    RangeSample,
    Sample,
    histogram_quantile,
    index_history,
    index_instant,
    plan_history,
    plan_queries,
    pod_pattern,
    reduce_history,
    reduce_kube_state,
    reduce_signals,
)

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "want"),
    [
        (0.5, {0.5: 2.0, 1.0: 8.0, INF: 10.0}, 0.75),  # the docstring's worked example
        (0.99, {0.5: 0.0, 1.0: 0.0, 2.0: 10.0, INF: 10.0}, 1.99),
        (0.99, {0.5: 0.0, 1.0: 5.0, INF: 10.0}, 1.0),  # rank in +Inf: highest finite bound
        (0.5, {1.0: 4.0, INF: 4.0}, 0.5),  # first bucket starts at 0
        (0.5, {1.0: 0.0, INF: 0.0}, None),  # no observations
        (0.5, {1.0: 3.0}, None),  # no +Inf bucket: not a valid histogram
        (
            0.5,
            {1.0: 6.0, 2.0: 5.0, INF: 10.0},
            1.0 / 1.2 * 1.0,
        ),  # non-monotonic repaired: 6,6,10 -> rank 5 in first
    ],
)
def test_histogram_quantile(q: float, buckets: dict[float, float], want: float | None) -> None:
    got = histogram_quantile(q, buckets)
    if want is None:
        assert got is None
    else:
        assert got == pytest.approx(want)


@pytest.mark.parametrize(
    ("deployment", "pod", "matches"),
    [
        ("llama", "llama-6f9c7b8d5-x2kqp", True),
        ("llama", "llama-8b-6f9c7b8d5-x2kqp", False),  # another Deployment's pod
        ("llama-8b", "llama-8b-6f9c7b8d5-x2kqp", True),
        ("llama", "llama-x2kqp", False),  # a bare pod or StatefulSet-like name
        ("llama.v2", "llamaxv2-6f9c7b8d5-x2kqp", False),  # '.' is literal
        ("llama", "llama-6f9c7b8d5-x2kqp-extra", False),
    ],
)
def test_pod_pattern(deployment: str, pod: str, matches: bool) -> None:
    assert bool(pod_pattern(deployment).fullmatch(pod)) is matches


def _target(ns: str, name: str, **meta: str) -> Target:
    return Target(
        ns,
        name,
        parse_metadata({"backend": "vllm", "deployment": name, "targetQueuePerReplica": "4", **meta}),
    )


def test_query_count_does_not_grow_with_scaledobjects() -> None:
    few = [_target("a", "m1", latencySloSeconds="1"), _target("b", "m2", targetGpuUtilization="70")]
    many = [
        _target(f"ns{i % 7}", f"m{i}", latencySloSeconds="1", targetGpuUtilization="70") for i in range(500)
    ]
    assert len(plan_queries(few, "1m").queries) == len(plan_queries(many, "1m").queries) == 7


def test_queries_are_confined_to_the_namespaces_served() -> None:
    plan = plan_queries([_target("team-a", "m1"), _target("team-b", "m2")], "30s")
    assert plan.queries
    for q in plan.queries:
        assert 'namespace=~"team-a|team-b"' in q.promql, q.promql


def test_no_metadata_value_other_than_namespace_enters_promql() -> None:
    t = Target(
        "ns",
        "so",
        parse_metadata(
            {
                "backend": "vllm",
                "deployment": "dep",
                "model": "m/with.odd-chars",
                "targetQueuePerReplica": "1",
            }
        ),
    )
    text = " ".join(q.promql for q in plan_queries([t], "1m").queries)
    assert "dep" not in text and "m/with" not in text


def _s(value: float, **labels: str) -> Sample:
    return Sample(labels, value)


RESULTS = {
    "up": [
        _s(1, namespace="ns", pod="llama-abc12-aaaaa"),
        _s(1, namespace="ns", pod="llama-abc12-bbbbb"),
        _s(0, namespace="ns", pod="llama-abc12-ccccc"),
        _s(1, namespace="other", pod="llama-abc12-zzzzz"),
    ],
    "vllm:presence": [
        _s(1, namespace="ns", pod="llama-abc12-aaaaa", model_name="m"),
        _s(1, namespace="ns", pod="llama-abc12-bbbbb", model_name="m"),
        _s(1, namespace="other", pod="llama-abc12-zzzzz", model_name="m"),
    ],
    "vllm:queue": [
        _s(5, namespace="ns", pod="llama-abc12-aaaaa", model_name="m"),
        _s(7, namespace="ns", pod="llama-abc12-bbbbb", model_name="m"),
        _s(1000, namespace="other", pod="llama-abc12-zzzzz", model_name="m"),
        _s(500, namespace="ns", pod="llama-8b-abc12-aaaaa", model_name="m"),
    ],
    "vllm:throughput:0": [
        _s(100.0, namespace="ns", pod="llama-abc12-aaaaa", model_name="m"),
        _s(math.nan, namespace="ns", pod="llama-abc12-bbbbb", model_name="m"),
    ],
    "vllm:latency:e2e:0": [
        _s(0, namespace="ns", pod="llama-abc12-aaaaa", model_name="m", le="1.0"),
        _s(4, namespace="ns", pod="llama-abc12-aaaaa", model_name="m", le="2.0"),
        _s(4, namespace="ns", pod="llama-abc12-aaaaa", model_name="m", le="+Inf"),
        _s(0, namespace="ns", pod="llama-abc12-bbbbb", model_name="m", le="1.0"),
        _s(6, namespace="ns", pod="llama-abc12-bbbbb", model_name="m", le="2.0"),
        _s(6, namespace="ns", pod="llama-abc12-bbbbb", model_name="m", le="+Inf"),
    ],
    "dcgm:gpu_util": [
        _s(90, namespace="ns", pod="llama-abc12-aaaaa", gpu="0"),
        _s(70, namespace="ns", pod="llama-abc12-aaaaa", gpu="1"),
        _s(50, namespace="ns", pod="llama-abc12-bbbbb", gpu="2"),
        _s(100, namespace="", pod="", gpu="3"),
    ],
}


def test_reduce_signals_sums_only_this_deployments_pods() -> None:
    t = _target("ns", "llama", latencySloSeconds="5", targetGpuUtilization="80")
    s = reduce_signals(t, RESULTS)
    # ccccc failed its scrape; bbbbb reports NaN tokens/s: both unreadable, which holds the fleet
    assert (s.current_replicas, s.ready_replicas, s.unreadable_pods) == (3, 2, 2)
    assert s.queue_requests == 12  # 5 + 7; other namespace and llama-8b excluded
    assert s.tokens_per_s == 100.0  # the NaN pod is not summed (as zero or otherwise)
    assert "llama-abc12-bbbbb" in s.notes["pods_nan"]
    assert s.gpu_util_percent == pytest.approx(70.0)  # (90 + 70 + 50) / 3 GPUs
    # buckets summed over pods: {1: 0, 2: 10, +Inf: 10}: p99 = 1 + 1 x 9.9/10
    assert s.latency_s == pytest.approx(1.99)
    assert "not scraped" in s.notes["pods"]


def test_the_deployments_entry_of_the_instant_index_gives_the_same_signals() -> None:
    index = index_instant(RESULTS)
    for deployment in ("llama", "llama-8b"):
        for extra in ({}, {"latencySloSeconds": "5", "targetGpuUtilization": "80"}, {"model": "other-model"}):
            t = _target("ns", deployment, **extra)
            assert reduce_signals(t, index.get(("ns", deployment), {})) == reduce_signals(t, RESULTS), t
    # llama's pods and llama-8b's are told apart by the two segments after the name; no pod, no entry
    pods = {k: {x.labels["pod"] for x in v["vllm:queue"]} for k, v in index.items() if "vllm:queue" in v}
    assert pods == {
        ("ns", "llama"): {"llama-abc12-aaaaa", "llama-abc12-bbbbb"},
        ("ns", "llama-8b"): {"llama-8b-abc12-aaaaa"},
        ("other", "llama"): {"llama-abc12-zzzzz"},
    }
    assert all(ns and dep for ns, dep in index)


def test_reduce_signals_model_filter() -> None:
    s = reduce_signals(_target("ns", "llama", model="other-model"), RESULTS)
    assert s.queue_requests is None and s.ready_replicas == 0 and s.current_replicas == 3


def test_reduce_signals_no_requests_is_no_traffic_not_missing() -> None:
    results = {
        **RESULTS,
        "vllm:latency:e2e:0": [
            _s(0, namespace="ns", pod="llama-abc12-aaaaa", model_name="m", le=le) for le in ("1.0", "+Inf")
        ],
    }
    s = reduce_signals(_target("ns", "llama", latencySloSeconds="5"), results)
    assert s.latency_s is None and SignalName.LATENCY in s.no_traffic


def test_reduce_signals_triton_summary_and_mean() -> None:
    t = Target(
        "ns", "tri", parse_metadata({"backend": "triton", "deployment": "tri", "latencySloSeconds": "1"})
    )
    pod = {"namespace": "ns", "pod": "tri-abc12-aaaaa", "model": "m"}
    with_summary = {
        "triton:latency:e2e:0": [_s(800_000, **pod, quantile="0.99"), _s(300_000, **pod, quantile="0.5")]
    }
    s = reduce_signals(t, with_summary)
    assert s.latency_s == pytest.approx(0.8) and "summary quantile 0.99" in s.notes["latency"]
    mean_only = {"triton:latency:e2e:1": [_s(2_000_000, **pod)], "triton:latency:e2e:1:count": [_s(4, **pod)]}
    s = reduce_signals(t, mean_only)
    assert s.latency_s == pytest.approx(0.5) and "mean" in s.notes["latency"]


# -- history and kube-state-metrics --------------------------------------------------------------------
def test_history_is_one_series_per_deployment_and_bounded() -> None:
    few = [_target("a", "m1")]
    many = [_target(f"ns{i % 7}", f"m{i}") for i in range(500)]
    assert len(plan_history(few, "1m").queries) == len(plan_history(many, "1m").queries) == 4
    text = " ".join(q.promql for q in plan_history(few, "1m").queries)
    assert "label_replace(" in text and '"(.+)-[a-z0-9]+-[a-z0-9]+"' in text and 'namespace=~"a"' in text


def test_reduce_history_sums_the_deployment_and_filters_namespace_and_model() -> None:
    t = Target("ns", "so", parse_metadata({"backend": "vllm", "deployment": "dep", "model": "m",
                                             "targetQueuePerReplica": "1"}))  # fmt: skip
    mine = {"namespace": "ns", "deployment": "dep", "model_name": "m"}
    results = {
        "history:vllm:queue": [
            RangeSample(mine, (0.0, 15.0), (1.0, 2.0)),
            RangeSample({**mine, "model_name": "other"}, (0.0, 15.0), (50.0, 50.0)),
            RangeSample({**mine, "namespace": "x"}, (0.0, 15.0), (50.0, 50.0)),
        ],
        "history:vllm:throughput:0": [RangeSample(mine, (0.0, 15.0), (10.0, 20.0))],
        "history:vllm:throughput:1": [RangeSample(mine, (15.0,), (5.0,))],
        "history:replicas": [RangeSample({"namespace": "ns", "deployment": "dep"}, (0.0, 15.0), (1.0, 2.0))],
    }
    demand, replicas = reduce_history(t, results)
    assert demand[SignalName.QUEUE] == Series((0.0, 15.0), (1.0, 2.0))
    assert demand[SignalName.TOKENS] == Series((0.0, 15.0), (10.0, 25.0))
    assert replicas == Series((0.0, 15.0), (1.0, 2.0))
    # the Deployment's entry of the index gives the same answer as every series
    index = index_history(results)
    assert reduce_history(t, index[("ns", "dep")]) == (demand, replicas)
    assert set(index) == {("ns", "dep"), ("x", "dep")}
    assert len(index[("ns", "dep")]["history:vllm:queue"]) == 2  # the model filter is reduce_history's


def test_index_history_drops_series_without_namespace_or_deployment() -> None:
    results = {"history:replicas": [RangeSample({"namespace": "ns"}, (0.0,), (1.0,))]}
    assert index_history(results) == {}


def test_reduce_kube_state() -> None:
    t = _target("ns", "dep")
    pods = {"namespace": "ns"}
    results = {
        "ksm:created": [_s(900.0, **pods, pod="dep-abc12-aaaaa"), _s(990.0, **pods, pod="dep-abc12-bbbbb"),
                        _s(100.0, **pods, pod="dep-2-abc12-ccccc")],
        "ksm:ready_time": [_s(945.0, **pods, pod="dep-abc12-aaaaa")],
        "ksm:ready": [_s(1.0, **pods, pod="dep-abc12-aaaaa"), _s(0.0, **pods, pod="dep-abc12-bbbbb")],
    }  # fmt: skip
    s = reduce_kube_state(t, results, now_s=1000.0)
    assert s is not None
    assert (s.total, s.ready, s.warming_ages_s, s.cold_starts_s) == (2, 1, (10.0,), (45.0,))
    assert reduce_kube_state(_target("ns", "none"), results, now_s=1000.0) is None
