"""PromQL planning and the pure reduction of query results into Signals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scaler.core.config import parse_metadata
from scaler.core.signals import Measure, SignalName
from scaler.core.state import Series
from scaler.core.target import Target
from scaler.sources.membership import PodStates
from scaler.sources.query import (
    RangeSample,
    Sample,
    _sum_series,
    attainment,
    histogram_quantile,
    history_range,
    index_history,
    index_instant,
    index_kube_state,
    iteration_rates,
    plan_history,
    plan_kube_state,
    plan_queries,
    reduce_history,
    reduce_kube_state,
    reduce_signals,
    shape_of,
)
from scaler.sources.spec import render
from tests.harness.kube_api import generated_pod_name

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
    # up, presence, queue, 2 throughput, latency, gpu; the engine's running, waiting, requests, step sum
    # and count: 12 for 2 ScaledObjects or 500
    assert len(plan_queries(few, "1m").queries) == len(plan_queries(many, "1m").queries) == 12


def test_queries_are_confined_to_the_namespaces_served() -> None:
    plan = plan_queries([_target("team-a", "m1"), _target("team-b", "m2")], "30s")
    assert plan.queries
    for q in plan.queries:
        assert 'namespace=~"team-a|team-b"' in q.promql, q.promql


# The PromQL each plan sends (promql_golden.json), as main's plans wrote it as text (commit ae66b29) before
# queries became QuerySpecs: rendering the specs must not change a character Prometheus receives
# (tests/scaler/sources and tests/reliability run these against a real Prometheus). Issue 13 added the
# Triton TensorRT-LLM and vLLM-backend shapes' queries (triton-trtllm:*, triton-vllm:*); every older line
# is as it was. The TensorRT-LLM iteration counter and batch gauges added three triton-trtllm lines
# (iterations, batch, history iterations), nothing else: regenerate by writing ``got`` below as JSON
# (indent 1) and check the diff adds only such lines.
GOLDEN = json.loads((Path(__file__).parent / "promql_golden.json").read_text())


def test_rendered_promql_is_unchanged() -> None:
    targets = [
        _target("team-a", "m1", latencySloSeconds="1", latencyMetric="ttft"),
        _target("team-b", "m2", latencySloSeconds="1", targetGpuUtilization="70"),
        _target("team-b", "tri", backend="triton", latencySloSeconds="2"),
        _target("team-a", "tri2", backend="triton", latencySloSeconds="2", latencyMetric="ttft"),
    ]
    got = [(q.kind, q.promql) for plan in (plan_queries, plan_history) for q in plan(targets, "1m").queries]
    assert [list(g) for g in got] == GOLDEN
    for plan in (plan_queries, plan_history):
        for q in plan(targets, "1m").queries:
            assert q.spec is not None and render(q.spec) == q.promql, q.kind


def test_history_range_is_aligned_to_the_step() -> None:
    # The docstring's worked example, and a time already on the step.
    assert history_range(1_000_007.0, 3600.0, 15.0) == (996_405.0, 1_000_005.0)
    assert history_range(30.0, 3600.0, 15.0) == (-3570.0, 30.0)


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
        _s(1, namespace="ns", pod="llama-bc4d5-hhhhh"),
        _s(1, namespace="ns", pod="llama-bc4d5-bbbbb"),
        _s(0, namespace="ns", pod="llama-bc4d5-ccccc"),
        _s(1, namespace="other", pod="llama-bc4d5-zzzzz"),
    ],
    "vllm:presence": [
        _s(1, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m"),
        _s(1, namespace="ns", pod="llama-bc4d5-bbbbb", model_name="m"),
        _s(1, namespace="other", pod="llama-bc4d5-zzzzz", model_name="m"),
    ],
    "vllm:queue": [
        _s(5, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m"),
        _s(7, namespace="ns", pod="llama-bc4d5-bbbbb", model_name="m"),
        _s(1000, namespace="other", pod="llama-bc4d5-zzzzz", model_name="m"),
        _s(500, namespace="ns", pod="llama-8b-bc4d5-hhhhh", model_name="m"),
    ],
    "vllm:throughput:0": [
        _s(100.0, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m"),
        _s(math.nan, namespace="ns", pod="llama-bc4d5-bbbbb", model_name="m"),
    ],
    "vllm:latency:e2e:0": [
        _s(0, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m", le="1.0"),
        _s(4, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m", le="2.0"),
        _s(4, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m", le="+Inf"),
        _s(0, namespace="ns", pod="llama-bc4d5-bbbbb", model_name="m", le="1.0"),
        _s(6, namespace="ns", pod="llama-bc4d5-bbbbb", model_name="m", le="2.0"),
        _s(6, namespace="ns", pod="llama-bc4d5-bbbbb", model_name="m", le="+Inf"),
    ],
    "dcgm:gpu_util": [
        _s(90, namespace="ns", pod="llama-bc4d5-hhhhh", gpu="0"),
        _s(70, namespace="ns", pod="llama-bc4d5-hhhhh", gpu="1"),
        _s(50, namespace="ns", pod="llama-bc4d5-bbbbb", gpu="2"),
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
    assert "llama-bc4d5-bbbbb" in s.notes["pods_nan"]
    assert s.gpu_util_percent == pytest.approx(70.0)  # (90 + 70 + 50) / 3 GPUs
    # buckets summed over pods: {1: 0, 2: 10, +Inf: 10}: p99 = 1 + 1 x 9.9/10
    assert s.latency_s == pytest.approx(1.99)
    assert "not scraped" in s.notes["pods"]


def test_rates_count_the_pods_a_scale_down_just_deleted_and_gauges_do_not() -> None:
    """A pod deleted by a scale-down is no longer owned, but what it served in the rate window is still in
    its counters. Worked example: 3 pods served 15 requests/s; one was deleted 20 s ago, 40 s into the 60 s
    window. Its rate reads 5 x 40 / 60 = 3.3, the two left read 5 + 2.5 x 20 / 60 = 5.8 each: 15 together,
    where the live pods alone read 11.7, which asks for fewer replicas still. Its queue gauge is gone with
    it; a pod of another Deployment's ReplicaSet never counts."""
    live, gone, other = "llama-bc4d5-hhhhh", "llama-bc4d5-xxxxx", "llama-8b-bc4d5-kkkkk"
    old_rs = "llama-5d4f8-qqqqq"  # a pod of the ReplicaSet a rollout replaced, gone too

    def per(values: dict[str, float], **labels: str) -> list[Sample]:
        return [_s(v, namespace="ns", pod=p, model_name="m", **labels) for p, v in values.items()]

    results = {
        "up": [_s(1, namespace="ns", pod=p) for p in (live, "llama-bc4d5-bbbbb")],
        "vllm:presence": per({live: 1, "llama-bc4d5-bbbbb": 1}),
        "vllm:queue": per({live: 2, "llama-bc4d5-bbbbb": 3, gone: 40, other: 50}),
        "vllm:requests": per({live: 35 / 6, "llama-bc4d5-bbbbb": 35 / 6, gone: 10 / 3, other: 9, old_rs: 1}),
        "vllm:throughput:0": per({live: 100, "llama-bc4d5-bbbbb": 100, gone: 60, other: 70}),
        "vllm:latency:e2e:0": [
            *per({live: 0, gone: 0}, le="1.0"),
            *per({live: 4, gone: 6}, le="2.0"),
            *per({live: 4, gone: 6}, le="+Inf"),
        ],
    }
    members = frozenset({live, "llama-bc4d5-bbbbb"})
    prefixes = frozenset({"llama-bc4d5-", "llama-5d4f8-"})
    pods = PodStates(2, 2, (), (), pods=members, ready_pods=members, prefixes=prefixes)
    t = _target("ns", "llama", latencySloSeconds="5")
    s = reduce_signals(t, results, pods)
    assert s.requests_per_s == pytest.approx(35 / 6 * 2 + 10 / 3 + 1)  # 16: the old ReplicaSet's pod too
    assert s.tokens_per_s == 260.0  # 100 + 100 + 60; llama-8b's 70 is not this Deployment's
    assert s.queue_requests == 5  # the live pods' queue only
    assert (s.current_replicas, s.ready_replicas, s.unreadable_pods) == (2, 2, 0)
    # buckets over the live pod and the gone one: {1: 0, 2: 10, +Inf: 10}: p99 = 1.99 s
    assert s.latency_s == pytest.approx(1.99)
    note = s.source_notes["departed"]
    assert note == f"rates include 2 pod(s) gone within the rate window: {old_rs}, {gone}"
    # without the ReplicaSets' prefixes (an owner reader that lists none) only the live pods count
    bare = reduce_signals(t, results, PodStates(2, 2, (), (), pods=members, ready_pods=members))
    assert bare.requests_per_s == pytest.approx(35 / 3) and "departed" not in bare.source_notes
    assert reduce_signals(t, index_instant(results).samples_for(t, pods), pods) == s


def test_the_deployments_entry_of_the_instant_index_gives_the_same_signals() -> None:
    index = index_instant(RESULTS)
    for deployment in ("llama", "llama-8b"):
        for extra in ({}, {"latencySloSeconds": "5", "targetGpuUtilization": "80"}, {"model": "other-model"}):
            t = _target("ns", deployment, **extra)
            assert reduce_signals(t, index.samples_for(t, None)) == reduce_signals(t, RESULTS), t
    # llama's pods and llama-8b's are told apart by the two segments after the name; no pod, no entry
    by_name = index.by_name
    pods = {k: {x.labels["pod"] for x in v["vllm:queue"]} for k, v in by_name.items() if "vllm:queue" in v}
    assert pods == {
        ("ns", "llama"): {"llama-bc4d5-hhhhh", "llama-bc4d5-bbbbb"},
        ("ns", "llama-8b"): {"llama-8b-bc4d5-hhhhh"},
        ("other", "llama"): {"llama-bc4d5-zzzzz"},
    }
    assert all(ns and dep for ns, dep in by_name)


def test_the_shape_read_from_the_index_is_the_shape_read_from_every_result() -> None:
    # The collect reads the shape once, from the target's own samples, and hands it to reduce_signals.
    index = index_instant(RESULTS)
    for deployment in ("llama", "llama-8b", "absent"):
        for extra in ({}, {"model": "other-model"}, {"backend": "triton", "tritonBackend": "auto"}):
            t = _target("ns", deployment, **extra)
            mine = index.samples_for(t, None)
            shape = shape_of(t, mine)
            assert shape == shape_of(t, RESULTS), t
            assert reduce_signals(t, mine, shape=shape) == reduce_signals(t, RESULTS), t


@pytest.mark.parametrize("length", [45, 46, 47, 49, 53])
def test_long_deployments_read_their_cut_pod_names_from_the_index(length: int) -> None:
    # Kubernetes cuts a ReplicaSet's generateName base to 58 characters: a 49-character Deployment's pods
    # are <deployment>-<8 hash chars><5 random>, no hyphen before the suffix (membership's worked example).
    long, longer = "l" * (length - 2) + "-x", "l" * (length - 2) + "-xy"
    pods = [
        generated_pod_name(f"{d}-{h}", sfx)
        for d in (long, longer)
        for h in ("5d4f8b7c9f", "bc4")
        for sfx in ("x2kqp", "bbbbb")
    ]
    results = {
        "up": [_s(1, namespace="ns", pod=p) for p in pods],
        "vllm:queue": [_s(i + 1, namespace="ns", pod=p, model_name="m") for i, p in enumerate(pods)],
    }
    index = index_instant(results)
    for d in (long, longer):
        t = _target("ns", d)
        full = reduce_signals(t, results)
        assert full.current_replicas == 4
        assert reduce_signals(t, index.samples_for(t, None)) == full, d


def test_pods_known_by_ownership_read_their_samples_from_the_index_whatever_their_names() -> None:
    # Ownership is the truth: a pod the Kubernetes API says is the Deployment's counts even when its name
    # does not follow <deployment>-<hash>-<suffix>, and one named like it but not owned does not.
    index = index_instant(RESULTS)
    t = _target("ns", "llama")
    for members in (
        frozenset({"llama-bc4d5-hhhhh", "llama-8b-bc4d5-hhhhh"}),  # llama-8b's pod, not its own bbbbb
        frozenset({"llama-bc4d5-hhhhh", "llama-bc4d5-bbbbb", "llama-bc4d5-ccccc", "canary-0"}),
        frozenset(),
    ):
        pods = PodStates(
            total=len(members),
            ready=len(members),
            warming_ages_s=(),
            cold_starts_s=(),
            pods=members,
            ready_pods=members,
        )
        assert reduce_signals(t, index.samples_for(t, pods), pods) == reduce_signals(t, RESULTS, pods), (
            members
        )


def test_reduce_signals_model_filter() -> None:
    s = reduce_signals(_target("ns", "llama", model="other-model"), RESULTS)
    assert s.queue_requests is None and s.ready_replicas == 0 and s.current_replicas == 3


def test_reduce_signals_no_requests_is_no_traffic_not_missing() -> None:
    results = {
        **RESULTS,
        "vllm:latency:e2e:0": [
            _s(0, namespace="ns", pod="llama-bc4d5-hhhhh", model_name="m", le=le) for le in ("1.0", "+Inf")
        ],
    }
    s = reduce_signals(_target("ns", "llama", latencySloSeconds="5"), results)
    assert s.latency_s is None and SignalName.LATENCY in s.no_traffic


def test_reduce_signals_triton_summary_and_mean() -> None:
    t = Target(
        "ns", "tri", parse_metadata({"backend": "triton", "deployment": "tri", "latencySloSeconds": "1"})
    )
    pod = {"namespace": "ns", "pod": "tri-bc4d5-hhhhh", "model": "m"}
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
    # replicas, queue, 2 throughput, and the engine's running, waiting, requests, step sum and count
    assert len(plan_history(few, "1m").queries) == len(plan_history(many, "1m").queries) == 9
    text = " ".join(q.promql for q in plan_history(few, "1m").queries)
    # grouped by the ReplicaSet's generated prefix: the pod name less its 5 random characters
    assert (
        '"pod_prefix", "$1", "pod", "(.+)[bcdfghjklmnpqrstvwxz2456789]{5}"' in text
        and 'namespace=~"a"' in text
    )


def test_reduce_history_sums_the_deployment_and_filters_namespace_and_model() -> None:
    t = Target("ns", "so", parse_metadata({"backend": "vllm", "deployment": "dep", "model": "m",
                                             "targetQueuePerReplica": "1"}))  # fmt: skip
    mine = {"namespace": "ns", "pod_prefix": "dep-5d4f8b7c9-", "model_name": "m"}
    results = {
        "history:vllm:queue": [
            RangeSample(mine, (0.0, 15.0), (1.0, 2.0)),
            RangeSample({**mine, "model_name": "other"}, (0.0, 15.0), (50.0, 50.0)),
            RangeSample({**mine, "namespace": "x"}, (0.0, 15.0), (50.0, 50.0)),
        ],
        "history:vllm:throughput:0": [RangeSample(mine, (0.0, 15.0), (10.0, 20.0))],
        "history:replicas": [
            RangeSample({"namespace": "ns", "pod_prefix": "dep-5d4f8b7c9-"}, (0.0, 15.0), (1.0, 2.0))
        ],
        # a ReplicaSet of Deployment dep-2, and a StatefulSet's pods (no prefix): not dep's
        "history:vllm:throughput:1": [
            RangeSample(mine, (15.0,), (5.0,)),
            RangeSample({**mine, "pod_prefix": "dep-2-5d4f8b7c9-"}, (15.0,), (900.0,)),
        ],
    }
    history, windows = reduce_history(t, results)
    assert history[Measure.QUEUE] == Series((0.0, 15.0), (1.0, 2.0))
    assert history[Measure.TOKENS] == Series((0.0, 15.0), (10.0, 25.0))
    assert history[Measure.GENERATION_TOKENS] == Series((0.0, 15.0), (10.0, 20.0))  # throughput:0
    assert history[Measure.PROMPT_TOKENS] == Series((15.0,), (5.0,))  # throughput:1
    assert history[Measure.REPLICAS] == history[Measure.READY] == Series((0.0, 15.0), (1.0, 2.0))
    assert windows == ()  # no latency SLO, no latency history
    # the Deployment's entry of the index gives the same answer as every series, and so do its
    # ReplicaSets' prefixes by ownership
    index = index_history(results)
    assert reduce_history(t, index[("ns", "dep")]) == (history, windows)
    assert reduce_history(t, index[("ns", "dep")], frozenset({"dep-5d4f8b7c9-"})) == (history, windows)
    assert set(index) == {("ns", "dep"), ("x", "dep"), ("ns", "dep-2")}
    assert len(index[("ns", "dep")]["history:vllm:queue"]) == 2  # the model filter is reduce_history's


def test_index_history_drops_series_without_namespace_or_prefix() -> None:
    results = {"history:replicas": [RangeSample({"namespace": "ns"}, (0.0,), (1.0,))]}
    assert index_history(results) == {}


def test_kube_state_is_three_queries_joining_pods_to_deployments_in_promql() -> None:
    plan = plan_kube_state([_target("a", "m1"), _target("b", "m2")])
    assert [q.kind for q in plan.queries] == ["ksm:owners", "ksm:pods", "ksm:deployments"]
    owners = plan.queries[0].promql
    assert (
        "kube_pod_owner" in owners
        and "group_left (deployment)" in owners
        and "kube_replicaset_owner" in owners
    )


def test_reduce_kube_state() -> None:
    ns = {"namespace": "ns"}
    results = {
        "ksm:owners": [
            _s(1, **ns, pod="dep-bc4d5-hhhhh", replicaset="dep-bc4d5", deployment="dep"),
            _s(1, **ns, pod="dep-bc4d5-bbbbb", replicaset="dep-bc4d5", deployment="dep"),
            _s(1, **ns, pod="dep-bc4d5-ddddd", replicaset="dep-bc4d5", deployment="dep"),
            _s(1, **ns, replicaset="dep-bc4d5", deployment="dep"),
            _s(1, **ns, replicaset="dep-9f9f9", deployment="dep"),  # an old ReplicaSet, no pods
            _s(1, **ns, pod="sts-0", owner_kind="StatefulSet", owner_name="sts"),
        ],
        "ksm:pods": [
            _s(900.0, **ns, __name__="kube_pod_created", pod="dep-bc4d5-hhhhh"),
            _s(945.0, **ns, __name__="kube_pod_status_ready_time", pod="dep-bc4d5-hhhhh"),
            _s(1.0, **ns, __name__="kube_pod_status_ready", condition="true", pod="dep-bc4d5-hhhhh"),
            _s(990.0, **ns, __name__="kube_pod_created", pod="dep-bc4d5-bbbbb"),
            _s(0.0, **ns, __name__="kube_pod_status_ready", condition="true", pod="dep-bc4d5-bbbbb"),
            _s(100.0, **ns, __name__="kube_pod_created", pod="dep-bc4d5-ddddd"),
            _s(1.0, **ns, __name__="kube_pod_status_phase", phase="Failed", pod="dep-bc4d5-ddddd"),  # evicted
        ],
        "ksm:deployments": [_s(2, **ns, deployment="dep")],
    }
    ksm = index_kube_state(results)
    s = reduce_kube_state(_target("ns", "dep"), ksm, now_s=1000.0)
    assert (s.total, s.ready, s.warming_ages_s, s.cold_starts_s) == (2, 1, (10.0,), (45.0,))
    assert s.prefixes == frozenset({"dep-bc4d5-", "dep-9f9f9-"})
    assert (
        reduce_kube_state(_target("ns", "none"), ksm, now_s=1000.0).error
        == "no Deployment ns/none (kube-state-metrics)"
    )
    assert "is a StatefulSet" in (reduce_kube_state(_target("ns", "sts"), ksm, now_s=1000.0).error or "")


def test_reduce_signals_engine_numbers_and_attainment() -> None:
    """The engine's own numbers for the capacity model: running and waiting apart, requests finished,
    prompt and generated tokens apart, the mean step from the inter-token histogram, and the fraction of
    the window's requests within the SLO from the latency histogram."""
    pod = {"namespace": "ns", "pod": "llama-bc4d5-hhhhh", "model_name": "m"}
    results = {
        "up": [_s(1, namespace="ns", pod="llama-bc4d5-hhhhh")],
        "vllm:presence": [_s(1, **pod)],
        "vllm:running": [_s(20, **pod)],
        "vllm:waiting": [_s(3, **pod)],
        "vllm:requests": [_s(4.0, **pod)],
        "vllm:throughput:0": [_s(800.0, **pod)],  # generation
        "vllm:throughput:1": [_s(4600.0, **pod)],  # prompt
        "vllm:step:sum": [_s(0.025 * 800.0, **pod)],  # 800 gaps/s of 25 ms each
        "vllm:step:count": [_s(800.0, **pod)],
        # 4 requests/s: 2 within 0.5 s, 3.6 within 1 s, all within 2.5 s
        "vllm:latency:ttft:0": [
            _s(v, **pod, le=le) for le, v in (("0.5", 2.0), ("1.0", 3.6), ("2.5", 4.0), ("+Inf", 4.0))
        ],
    }
    t = _target("ns", "llama", latencySloSeconds="0.75", latencyMetric="ttft")
    s = reduce_signals(t, results, window_s=60.0)
    assert (s.running_requests, s.waiting_requests, s.requests_per_s) == (20, 3, 4.0)
    assert (s.prompt_tokens_per_s, s.generation_tokens_per_s) == (4600.0, 800.0)
    assert s.step_s == pytest.approx(0.025)
    # at 0.75 s: halfway through (0.5, 1]: (2 + 1.6 / 2) / 4 = 70 % of 240 requests in the 1 m window
    assert s.latency_attainment == pytest.approx(0.7) and s.latency_requests == pytest.approx(240.0)


def test_attainment_worked_example() -> None:
    assert attainment({0.5: 2.0, 1.0: 8.0, INF: 10.0}, 0.75, 60.0) == (pytest.approx(0.5), 600.0)
    assert attainment({0.5: 2.0, 1.0: 8.0, INF: 10.0}, 5.0, 60.0) == (
        pytest.approx(0.8),
        600.0,
    )  # +Inf misses
    assert attainment({0.5: 0.0, INF: 0.0}, 1.0, 60.0) == (None, 0.0)


def test_latency_history_in_minute_windows() -> None:
    """The latency histogram's minute windows at every history step (overlapping, so each alignment of a
    burst is seen): each point is a window of requests and their spread, with the mean Ready replicas over
    the minute."""
    t = Target("ns", "so", parse_metadata({"backend": "vllm", "deployment": "dep", "latencySloSeconds": "1",
                                             "latencyMetric": "ttft"}))  # fmt: skip
    plan = plan_history([t], "1m")
    latency = next(q for q in plan.queries if q.kind == "history:vllm:latency:ttft")
    assert latency.step_s is None and "[60s]" in latency.promql and "le)" in latency.promql
    mine = {"namespace": "ns", "pod_prefix": "dep-5d4f8b7c9-", "model_name": "m"}
    results = {
        "history:replicas": [RangeSample({"namespace": "ns", "pod_prefix": "dep-5d4f8b7c9-"},
                                         (15.0, 30.0, 45.0, 60.0, 120.0), (2.0, 2.0, 4.0, 4.0, 4.0))],
        # bucket rates per second: at 60 s, 1 request/s all within 0.5 s; at 120 s, none at all
        "history:vllm:latency:ttft": [
            RangeSample({**mine, "le": "0.5"}, (60.0, 120.0), (1.0, 0.0)),
            RangeSample({**mine, "le": "+Inf"}, (60.0, 120.0), (1.0, 0.0)),
        ],
    }  # fmt: skip
    _, windows = reduce_history(t, results)
    assert len(windows) == 1  # the minute without a request says nothing
    w = windows[0]
    assert (w.end_s, w.ready, w.requests, w.bounds_s, w.cumulative) == (
        60.0,
        3.0,
        60.0,
        (0.5, INF),
        (60.0, 60.0),
    )


def _trt(
    types: dict[str, float], kv: dict[str, float], pod: str = "trt-bc4d5-hhhhh"
) -> dict[str, list[Sample]]:
    at = {"namespace": "ns", "pod": pod, "model": "tensorrt_llm"}
    return {
        "up": [_s(1, namespace="ns", pod=pod)],
        "triton:presence": [_s(1, **at), _s(1, **{**at, "model": "ensemble"})],
        "triton-trtllm:presence": [_s(1, **at)],
        "triton-trtllm:queue": [_s(sum(v for k, v in types.items() if k in ("waiting", "active")), **at)],
        "triton-trtllm:request_types": [_s(v, **at, request_type=k) for k, v in types.items()],
        "triton-trtllm:kv_blocks": [_s(v, **at, kv_cache_block_type=k) for k, v in kv.items()],
        # the ensemble's own requests: not the TensorRT-LLM model's, so not counted
        "triton-trtllm:requests": [_s(2.0, **at), _s(2.0, **{**at, "model": "ensemble"})],
    }


@pytest.mark.parametrize(
    ("types", "kv", "running", "waiting", "queue", "kv_fraction", "derived"),
    [
        # later releases: running = active, waiting = waiting
        (
            {"waiting": 40, "active": 24, "scheduled": 24},
            {"fraction": 0.5, "used": 2, "max": 4},
            24,
            40,
            64,
            0.5,
            False,
        ),
        # older: no waiting, no fraction: waiting = active - scheduled, running = scheduled; KV used / max
        ({"active": 64, "scheduled": 24}, {"used": 3, "max": 4}, 24, 40, 64, 0.75, True),
        # older, more scheduled than active (skewed scrape): nothing waits
        ({"active": 10, "scheduled": 12}, {"used": 0, "max": 0}, 12, 0, 10, None, True),
    ],
)
def test_tensorrt_llm_running_waiting_and_kv_in_both_generations(
    types: dict[str, float],
    kv: dict[str, float],
    running: float,
    waiting: float,
    queue: float,
    kv_fraction: float | None,
    derived: bool,
) -> None:
    t = _target("ns", "trt", backend="triton")
    s = reduce_signals(t, _trt(types, kv))
    assert (s.running_requests, s.waiting_requests, s.queue_requests) == (running, waiting, queue)
    assert s.kv_cache_fraction == kv_fraction
    assert s.requests_per_s == 2.0  # the ensemble's series are left out: model(s) from the presence metric
    assert s.source_notes["shape"].startswith("Triton TensorRT-LLM (in-flight batching): tritonBackend auto")
    assert ("active - scheduled, running = scheduled" in s.source_notes["source:waiting"]) == derived


@pytest.mark.parametrize(
    ("shape", "want"),
    [("auto", "Triton TensorRT-LLM"), ("tensorrtllm", "Triton TensorRT-LLM"), ("generic", "Triton (generic")],
)
def test_the_shape_follows_tritonbackend(shape: str, want: str) -> None:
    t = _target("ns", "trt", backend="triton", tritonBackend=shape)
    s = reduce_signals(t, _trt({"waiting": 1, "active": 2}, {}))
    assert s.source_notes["shape"].startswith(want)


def test_auto_without_tensorrt_llm_series_falls_back_to_generic() -> None:
    t = _target("ns", "tri", backend="triton")
    at = {"namespace": "ns", "pod": "tri-bc4d5-hhhhh", "model": "bert"}
    s = reduce_signals(t, {"triton:presence": [_s(1, **at)], "triton:queue": [_s(9, **at)]})
    assert s.queue_requests == 9
    assert s.source_notes["shape"].startswith("Triton (generic backend): tritonBackend auto, no pod exports")


def test_auto_costs_no_query_per_scaledobject() -> None:
    # The shapes are told apart from the presence queries each refresh sends anyway: 1 or 500 Triton
    # ScaledObjects with tritonBackend auto send the same queries.
    one = plan_queries([_target("ns", "t0", backend="triton")], "1m").queries
    many = plan_queries([_target("ns", f"t{i}", backend="triton") for i in range(500)], "1m").queries
    assert len(one) == len(many)


def _it(pod: str, per_s: float) -> Sample:
    return _s(per_s, namespace="ns", pod=pod, model="tensorrt_llm")


def _batch(pod: str, context: float, decoding: float) -> list[Sample]:
    at = {"namespace": "ns", "pod": pod, "model": "tensorrt_llm"}
    label = "inflight_batcher_specific_metric"
    return [
        _s(context, **at, **{label: "total_context_tokens"}),
        _s(decoding, **at, **{label: "generation_requests"}),
    ]


LABEL = "inflight_batcher_specific_metric"


@pytest.mark.parametrize(
    ("iterations", "batch", "ready", "counted", "step_ms", "prompt", "generation", "token_pods"),
    [
        # 50 iterations/s with 400 context tokens and 16 decoding requests per iteration: step 1/50 = 20 ms,
        # 400 x 50 = 20,000 prompt and 16 x 50 = 800 generated tokens/s
        ({"a": 50.0}, {"a": (400, 16)}, {"a"}, set(), 20.0, 20_000.0, 800.0, 1),
        # two pods, 50 and 25 iterations/s: step mean(20, 40) = 30 ms; tokens 400 x 50 + 200 x 25 = 25,000
        ({"a": 50.0, "b": 25.0}, {"a": (400, 0), "b": (200, 0)}, {"a", "b"}, set(), 30.0, 25_000.0, 0.0, 2),
        # b is not Ready (loading): its 10 iterations/s (100 ms) are not in the step, its tokens still count
        ({"a": 50.0, "b": 10.0}, {"a": (400, 0), "b": (100, 0)}, {"a"}, set(), 20.0, 21_000.0, 0.0, 2),
        # b exports the token-length histograms (a newer release): its tokens come from them, not from here
        ({"a": 50.0, "b": 50.0}, {"a": (400, 0), "b": (400, 0)}, {"a", "b"}, {"b"}, 20.0, 20_000.0, 0.0, 1),
        # idle: the counter does not advance, no step; 0 tokens/s is a reading, not a missing one
        ({"a": 0.0}, {"a": (0, 0)}, {"a"}, set(), None, 0.0, 0.0, 1),
        # a NaN rate is no reading
        ({"a": math.nan}, {"a": (400, 16)}, {"a"}, set(), None, 0.0, 0.0, 0),
    ],
)
def test_tensorrt_llm_step_and_tokens_from_the_iteration_counter(
    iterations: dict[str, float],
    batch: dict[str, tuple[float, float]],
    ready: set[str],
    counted: set[str],
    step_ms: float | None,
    prompt: float,
    generation: float,
    token_pods: int,
) -> None:
    it = iteration_rates(
        [_it(p, v) for p, v in iterations.items()],
        [x for p, (c, d) in batch.items() for x in _batch(p, c, d)],
        LABEL,
        ready,
        counted,
    )
    assert it.step_s == (pytest.approx(step_ms / 1e3) if step_ms is not None else None)
    assert (it.prompt_per_s, it.generation_per_s, it.token_pods) == (
        pytest.approx(prompt),
        pytest.approx(generation),
        token_pods,
    )


def test_an_older_tensorrt_llm_release_reads_tokens_and_step_from_iterations() -> None:
    # No nv_llm_*_token_len histograms (no throughput samples): 50 iterations/s, 400 context tokens and 16
    # decoding requests per iteration give 20,000 + 800 tokens/s and a 20 ms step, and explain says so.
    pod = "trt-bc4d5-hhhhh"
    results = _trt({"active": 64, "scheduled": 24}, {"used": 3, "max": 4}, pod)
    results["triton-trtllm:iterations"] = [_it(pod, 50.0)]
    results["triton-trtllm:batch"] = _batch(pod, 400, 16)
    s = reduce_signals(_target("ns", "trt", backend="triton"), results)
    assert s.prompt_tokens_per_s == pytest.approx(20_000.0)
    assert s.generation_tokens_per_s == pytest.approx(800.0)
    assert s.tokens_per_s == pytest.approx(20_800.0)
    assert s.step_s == pytest.approx(0.020)
    assert "20.0 ms over 1 pod(s)" in s.source_notes["source:step"]
    assert 'general_type="iteration_counter"' in s.source_notes["source:step"]
    assert "used for 1 pod(s) without nv_llm_input_token_len" in s.source_notes["source:tokens"]
    assert "total_context_tokens" in s.source_notes["source:tokens"]
    # A newer release: the histograms' rates are the tokens (not added twice), the step still from iterations
    at = {"namespace": "ns", "pod": pod, "model": "tensorrt_llm"}
    results["triton-trtllm:throughput:0"] = [_s(400.0, **at)]  # output tokens
    results["triton-trtllm:throughput:1"] = [_s(2000.0, **at)]  # input tokens
    s = reduce_signals(_target("ns", "trt", backend="triton"), results)
    assert (s.prompt_tokens_per_s, s.generation_tokens_per_s, s.tokens_per_s) == (2000.0, 400.0, 2400.0)
    assert s.step_s == pytest.approx(0.020)
    assert "used for" not in s.source_notes["source:tokens"]


def test_tensorrt_llm_step_history_is_ready_replicas_over_the_fleets_iterations() -> None:
    # 3 Ready replicas at 150 iterations/s in all: 20 ms; 2 at 40/s: 50 ms
    t = _target("ns", "trt", backend="triton", tritonBackend="tensorrtllm")
    prefix = {"namespace": "ns", "pod_prefix": "trt-bc4d5-"}
    results = {
        "history:replicas": [RangeSample(prefix, (0.0, 15.0), (3.0, 2.0))],
        "history:triton-trtllm:iterations": [
            RangeSample({**prefix, "model": "tensorrt_llm"}, (0.0, 15.0), (150.0, 40.0))
        ],
    }
    history, _ = reduce_history(t, results)
    step = history[Measure.STEP_S]
    assert tuple(step.times_s) == (0.0, 15.0)
    assert tuple(step.values) == pytest.approx((0.020, 0.050))


@pytest.mark.parametrize(
    "meta",
    [
        {"backend": "vllm", "targetQueuePerReplica": "4"},
        {"backend": "vllm", "latencySloSeconds": "2", "model": "llama"},
        {"backend": "triton", "tritonBackend": "auto", "latencySloSeconds": "1", "latencyMetric": "ttft"},
    ],
    ids=["vllm", "vllm-slo-model", "triton-auto-ttft"],
)
def test_a_deployment_with_nothing_in_the_hour_reduces_the_same_whatever_its_name(
    meta: dict[str, str],
) -> None:
    """Why PrometheusSource shares one empty reduction per shape: the names only select series."""
    first = Target("ns-a", "so-a", parse_metadata({**meta, "deployment": "alpha"}))
    other = Target("ns-b", "so-b", parse_metadata({**meta, "deployment": "beta-7"}))
    shape = shape_of(first, {}, None)
    assert shape == shape_of(other, {}, None)
    empty = reduce_history(first, {}, None, shape)
    assert empty == reduce_history(other, {}, frozenset({"beta-7-5d4f8b7c9"}), shape)
    assert not empty[1] and not any(len(s) for s in empty[0].values())


def _sum_by_loop(series: list[RangeSample]) -> list[tuple[float, float]] | None:
    """_sum_series as it was written before numpy: the reference it must equal, float for float."""
    if not series:
        return None
    totals: dict[float, float] = {}
    for s in series:
        for t, v in zip(s.times_s, s.values, strict=True):
            if math.isfinite(v):
                totals[t] = totals.get(t, 0.0) + v
    return sorted(totals.items())


@pytest.mark.parametrize("seed", range(5))
def test_summed_series_equal_the_point_by_point_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = 1_000_000.0 + 15.0 * np.arange(240)
    series = [
        RangeSample({"pod_prefix": f"p{i}"}, grid[lo:hi], rng.gamma(0.8, 1e3 / (i + 1), hi - lo) * 1.1**i)
        for i, (lo, hi) in enumerate([(0, 240), (30, 200), (100, 240), (0, 5)])
    ]
    with_gaps = [*series, RangeSample({"pod_prefix": "nan"}, grid[:3], [math.nan, math.inf, 2.0])]
    for case in (series, with_gaps, series[:1], []):
        got = _sum_series(case)
        want = _sum_by_loop(case)
        assert (None if got is None else list(zip(got.times_s, got.values, strict=True))) == want
