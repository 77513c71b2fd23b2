"""The scaler as KEDA sees it: real Prometheus on loopback, real gRPC, a client from KEDA's upstream proto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from scaler.serve.collector import ProcessCollector
from scaler.serve.server import ScalerThread
from tests.harness.exporter import FakeFleet, FakePod
from tests.harness.prometheus import PrometheusProcess, free_port
from tests.harness.scaler import loopback_scaler

NS = "itest"
RATE_WINDOW = "10s"
VLLM = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "4",
    "targetTokensPerSecondPerReplica": "400",
    "targetGpuUtilization": "50",
    "latencySloSeconds": "5",
    "scaleToZero": "false",
}
# Deployments that may reach zero read the demand waiting in front of them (no such gateway here: no demand).
TO_ZERO = {"scaleToZero": "true", "activationQuery": f'sum(gateway_pending_requests{{namespace="{NS}"}})'}


@pytest.fixture(scope="module")
def pods(fleet: FakeFleet, prometheus: PrometheusProcess) -> Iterator[dict[str, FakePod]]:
    added = {
        # llama: queue 2 x (3 + 5) = 16, tokens 2 x 500 = 1000/s, GPUs (90 + 60) / 2 = 75 %, e2e 1.2 s each
        "llama-a": FakePod(
            NS,
            "llama-5d4f8b7c9-hhhhh",
            waiting=3,
            running=5,
            generation_tokens_per_s=400,
            prompt_tokens_per_s=100,
            requests_per_s=2,
            e2e_latency_s=1.2,
            gpu_util_percent=(90.0,),
        ),
        "llama-b": FakePod(
            NS,
            "llama-5d4f8b7c9-bbbbb",
            waiting=3,
            running=5,
            generation_tokens_per_s=400,
            prompt_tokens_per_s=100,
            requests_per_s=2,
            e2e_latency_s=1.2,
            gpu_util_percent=(60.0,),
        ),
        "tri": FakePod(
            NS,
            "tri-7c9d8b6f5-ccccc",
            backend="triton",
            model="ensemble",
            waiting=9,
            requests_per_s=50,
            e2e_latency_s=0.8,
            summary_latencies=True,
            gpu_util_percent=(40.0,),
        ),
        "quiet": FakePod(NS, "quiet-6b5c4d9f8-ddddd"),
        "hold-a": FakePod(NS, "hold-6b5c4d9f8-jjjjj"),
        "hold-b": FakePod(NS, "hold-6b5c4d9f8-fffff", scrape_ok=False),
    }
    for pod in added.values():
        fleet.add(pod)
    # Every scrapable vLLM pod fills the rate window (1 s scrapes, 10 s window): before two samples its
    # rates are missing, which rightly holds the fleet, and until the window is full rate() under-reads
    # (Prometheus divides by the whole range). Every pod is a target.
    scrapable_vllm = sum(1 for p in added.values() if p.backend == "vllm" and p.scrape_ok)
    prometheus.wait_until(
        f'count(count_over_time(vllm:generation_tokens_total{{namespace="{NS}"}}[{RATE_WINDOW}]) >= 10) '
        f"== {scrapable_vllm} "
        f'and on() count(up{{namespace="{NS}"}}) == {len(added)}',
        lambda r: bool(r),
    )
    yield added
    for pod in added.values():
        fleet.remove(pod.namespace, pod.name)


@pytest.fixture(scope="module")
def scaler(pods: dict[str, FakePod], prometheus: PrometheusProcess) -> Iterator[ScalerThread]:
    with loopback_scaler(prometheus.url, RATE_WINDOW) as s:
        yield s


@pytest.fixture(scope="module")
def channel(scaler: ScalerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(scaler.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel, keda_pb: tuple[ModuleType, ModuleType]) -> Any:
    return keda_pb[1].ExternalScalerStub(channel)


def ref(
    keda_pb: tuple[ModuleType, ModuleType], name: str, metadata: dict[str, str], namespace: str = NS
) -> Any:
    return keda_pb[0].ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=metadata)


def metrics_request(keda_pb: tuple[ModuleType, ModuleType], r: Any, metric: str) -> Any:
    return keda_pb[0].GetMetricsRequest(scaledObjectRef=r, metricName=metric)


def test_metric_spec_is_one_metric_with_target_one(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    spec = stub.GetMetricSpec(ref(keda_pb, "llama-so", VLLM), timeout=10)
    assert len(spec.metricSpecs) == 1
    (m,) = spec.metricSpecs
    assert (m.metricName, m.targetSize, m.targetSizeFloat) == ("llm-llama", 1, 1.0)


def test_get_metrics_is_the_desired_replica_count(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    r = ref(keda_pb, "llama-so", VLLM)
    resp = stub.GetMetrics(metrics_request(keda_pb, r, "llm-llama"), timeout=10)
    assert len(resp.metricValues) == 1
    (v,) = resp.metricValues
    # queue 16 / 4 = 4 beats tokens ceil(1000 / 400) = 3 and GPU ceil(2 x 75 / 50) = 3
    assert (v.metricValueFloat, v.metricValue) == (4.0, 4)
    assert stub.IsActive(r, timeout=10).result is True


def test_keda_prefixed_metric_name_is_accepted_and_others_refused(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    r = ref(keda_pb, "llama-so", VLLM)
    assert (
        stub.GetMetrics(metrics_request(keda_pb, r, "s0-llm-llama"), timeout=10).metricValues[0].metricValue
        == 4
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.GetMetrics(metrics_request(keda_pb, r, "cpu"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metricName" in (info.value.details() or "")


def test_triton_queue_and_summary_latency(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    meta = {
        "backend": "triton",
        "deployment": "tri",
        "model": "ensemble",
        "targetQueuePerReplica": "2",
        "latencySloSeconds": "0.5",
        "scaleToZero": "false",
    }
    r = ref(keda_pb, "tri-so", meta)
    value = stub.GetMetrics(metrics_request(keda_pb, r, "llm-tri"), timeout=10).metricValues[0].metricValue
    # queue 9 / 2 -> 5; latency 0.8 s over 0.5 s with 1 ready -> ceil(1 x 0.8 / 0.5) = 2
    assert value == 5


def test_zero_pods_is_inactive_with_value_zero(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    r = ref(keda_pb, "gone-so", {**VLLM, **TO_ZERO, "deployment": "gone"})
    assert (
        stub.GetMetrics(metrics_request(keda_pb, r, "llm-gone"), timeout=10).metricValues[0].metricValue == 0
    )
    assert stub.IsActive(r, timeout=10).result is False


def test_unscrapable_pod_holds_the_fleet(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    r = ref(keda_pb, "hold-so", {**VLLM, "deployment": "hold"})
    # one pod reports zero load, the other cannot be scraped: its load is unknown, so no scale-down from 2
    assert (
        stub.GetMetrics(metrics_request(keda_pb, r, "llm-hold"), timeout=10).metricValues[0].metricValue == 2
    )


def test_latency_matches_prometheus_histogram_quantile(
    scaler: ScalerThread, prometheus: PrometheusProcess, stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    stub.GetMetricSpec(ref(keda_pb, "llama-so", VLLM), timeout=10)
    labels = {"namespace": NS, "scaledobject": "llama-so", "deployment": "llama", "signal": "latency"}
    ours = scaler.registry.get_sample_value("llm_scaler_signal_value", labels)
    theirs = prometheus.query(
        "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket"
        f'{{namespace="{NS}", pod=~"llama-.*"}}[{RATE_WINDOW}])))'
    )
    # every request takes 1.2 s, bucket (1.0, 1.5]: 1.0 + 0.5 x 0.99 = 1.495
    assert ours == pytest.approx(1.495, rel=0.01)
    assert ours == pytest.approx(float(theirs[0]["value"][1]), rel=0.01)


def test_stream_pushes_current_state_then_changes(
    pods: dict[str, FakePod], stub: Any, keda_pb: tuple[ModuleType, ModuleType], scaler: ScalerThread
) -> None:
    quiet = pods["quiet"]
    # An idle Deployment goes inactive once releasing its replica pays: a 1 s cold start makes the
    # penalty 2 s, and the quiet pod has been idle since Prometheus started.
    r = ref(keda_pb, "quiet-so", {**VLLM, **TO_ZERO, "deployment": "quiet", "coldStartSeconds": "1"})
    stream = stub.StreamIsActive(r, timeout=60)
    try:
        first = next(stream)
        assert first.result is False, [
            e.decision.to_dict() for k, e in scaler.server.refresher.entries.items() if k[1] == "quiet-so"
        ]
        quiet.set(waiting=6)
        started = time.monotonic()
        second = next(stream)
        pushed_after_s = time.monotonic() - started
        assert second.result is True
        # one scrape (1 s) plus one refresh (0.5 s) and slack for a loaded 2-core machine
        assert pushed_after_s < 10, pushed_after_s
    finally:
        stream.cancel()
        quiet.set(waiting=0)


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "externalscaler.ExternalScaler"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(
        refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"externalscaler.ExternalScaler", "grpc.health.v1.Health"} <= names


BAD = [
    ({**VLLM, "backend": "tgi"}, "backend"),
    ({**VLLM, "targetQueuePerReplica": "-1"}, "targetQueuePerReplica"),
    ({**VLLM, "bogus": "1"}, "bogus"),
    ({"backend": "vllm", "deployment": "llama"}, "targetQueuePerReplica/"),
]
HOSTILE = [
    ({**VLLM, "deployment": 'llama"}) or vector(100'}, "deployment"),
    ({**VLLM, "model": 'x"} or on() vector(1) #'}, "model"),
    ({**VLLM, "serverAddress": 'http://127.0.0.1:1/api/v1/query?query=up"'}, "serverAddress"),
]


@pytest.mark.parametrize(("metadata", "key"), BAD + HOSTILE)
def test_bad_and_hostile_metadata_is_invalid_argument(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType], metadata: dict[str, str], key: str
) -> None:
    r = ref(keda_pb, "bad-so", metadata)
    calls = [
        lambda: stub.GetMetricSpec(r, timeout=5),
        lambda: stub.GetMetrics(metrics_request(keda_pb, r, "llm-llama"), timeout=5),
        lambda: stub.IsActive(r, timeout=5),
        lambda: next(stub.StreamIsActive(r, timeout=5)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"metadata key '{key}" in (info.value.details() or ""), info.value.details()


def test_hostile_namespace_is_invalid_argument(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.IsActive(ref(keda_pb, "x", VLLM, namespace='itest"}|vector(1)'), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'namespace'" in (info.value.details() or "")


def test_hostile_values_never_reach_prometheus(
    prometheus: PrometheusProcess, stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    for metadata, _ in HOSTILE:
        with pytest.raises(grpc.RpcError):
            stub.IsActive(ref(keda_pb, "bad-so", metadata), timeout=5)
    seen = prometheus.queries_seen()
    assert any('namespace=~"itest"' in q for q in seen), "the query log must show the scaler's own queries"
    for q in seen:
        assert "vector(" not in q and "or on()" not in q, q


def test_unreachable_prometheus_is_unavailable_naming_the_server(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    port = free_port()
    r = ref(keda_pb, "lost-so", {**VLLM, "serverAddress": f"http://127.0.0.1:{port}"})
    for call in (
        lambda: stub.IsActive(r, timeout=20),
        lambda: stub.GetMetrics(metrics_request(keda_pb, r, "llm-llama"), timeout=20),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"127.0.0.1:{port}" in (info.value.details() or "")


def test_scaler_metrics_tell_the_same_story(
    scaler: ScalerThread, stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    stub.GetMetrics(metrics_request(keda_pb, ref(keda_pb, "llama-so", VLLM), "llm-llama"), timeout=10)
    with urllib.request.urlopen(f"http://127.0.0.1:{scaler.server.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    so = f'deployment="llama",namespace="{NS}",scaledobject="llama-so"'
    assert f"llm_scaler_desired_replicas{{{so}}} 4.0" in text
    assert f'llm_scaler_signal_desired_replicas{{{so},signal="queue"}} 4.0' in text
    assert f'llm_scaler_signal_value{{{so},signal="tokens"}}' in text
    assert f"llm_scaler_active{{{so}}} 1.0" in text
    assert 'llm_scaler_rpc_duration_seconds_count{method="GetMetrics"}' in text
    assert 'llm_scaler_prometheus_query_duration_seconds_count{query="vllm:queue"}' in text


def test_the_refresh_runs_in_a_child_process_and_its_queries_are_counted_here(
    scaler: ScalerThread, stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    # The scaler's own Prometheus sources collect in a child process; what they sent is this process' gauge.
    assert isinstance(scaler.server.refresher.collector, ProcessCollector)
    stub.GetMetrics(metrics_request(keda_pb, ref(keda_pb, "llama-so", VLLM), "llm-llama"), timeout=10)
    gauge = "llm_scaler_queries_per_refresh"
    deadline = time.monotonic() + 10  # the next refresh (every 0.5 s) includes llama-so
    while not scaler.registry.get_sample_value(gauge) and time.monotonic() < deadline:
        time.sleep(0.1)
    queries = scaler.registry.get_sample_value(gauge)
    # (that the count is bounded whatever the number of ScaledObjects: tests/scaler/sources)
    assert queries is not None and queries > 0


def test_explain_prints_the_same_decision(prometheus: PrometheusProcess, pods: dict[str, FakePod]) -> None:
    args = [
        sys.executable,
        "-m",
        "scaler",
        "explain",
        "-o",
        "json",
        "--prometheus-url",
        prometheus.url,
        "--rate-window",
        RATE_WINDOW,
        "--namespace",
        NS,
        "--name",
        "llama-so",
        "--metadata",
        *(f"{k}={v}" for k, v in VLLM.items()),
    ]
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": ""}
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["desired_replicas"], doc["active"], doc["reason"]) == (4, True, "queue")
    assert doc["signals"]["queue"] == {"value": 16.0, "target": 4.0, "desired_replicas": 4, "status": "ok"}
    assert doc["signals"]["gpu"]["value"] == pytest.approx(75.0)
    assert doc["signals"]["tokens"]["value"] == pytest.approx(1000.0, rel=0.05)
    assert (doc["current_replicas"], doc["ready_replicas"]) == (2, 2)
