"""Issue 14 end to end: what a real cluster looks like on day one, through KEDA's protocol.

A real Prometheus on loopback scrapes the test exporter (pods named as Kubernetes names them, loading pods
scraped with ``up == 0`` because vLLM binds its port before it listens, one pod scraped twice, a gateway
queue, kube-state-metrics series); the scaler answers over real gRPC. The Kubernetes API is the one
stand-in (tests/harness/kube_api.py): Deployments, ReplicaSets, owner references, a rolling update, and a
namespace that answers 403.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.serve.server import ScalerThread, ServeOptions
from tests.harness.exporter import FakeFleet, FakePod, kube_state_metrics
from tests.harness.kube_api import FakeKubeAPI, FakeKubePod, TextExporter, generated_pod_name
from tests.harness.prometheus import PrometheusProcess, require_prometheus

PROD = "prod"  # the Kubernetes API can read it
LOCKED = "locked"  # no RoleBinding: 403 from the API, kube-state-metrics has its objects
PLAIN = "plain"  # neither: pods are matched by name
RATE_WINDOW = "10s"
# 49 characters: its ReplicaSet (with a 10-character hash) is 60, so pod names are cut at 58 characters.
LONG = "llama-3-1-70b-instruct-fp8-tp4-prod-europe-west4b"
# Each RPC's deadline. A ScaledObject's first call waits for its first fetch, run in the refresh child at
# niceness 10 (ServeOptions.refresh_nice), which also imports the Kubernetes client: 1.5 s on an idle
# 2-core machine, and over 20 s while simulations shared it (by the kernel's weights, 110 at niceness 10
# against 1024 at 0, the child gets about a tenth of a contended core). What these tests check is the
# answer, not how fast it came.
RPC_DEADLINE_S = 60
# No forecast: the history starts with the test, pods appearing a scrape apart would read as a trend.
BASE = {
    "backend": "vllm",
    "targetQueuePerReplica": "8",
    "scaleToZero": "false",
    "coldStartSeconds": "60",
    "predictive": "false",
}
GATEWAY = f'sum(interceptor_request_concurrency{{route_namespace="{PROD}", route_name="first"}})'


@dataclass
class World:
    fleet: FakeFleet
    text: TextExporter
    kube: FakeKubeAPI
    prometheus: PrometheusProcess
    kubeconfig: Path


def _serving(fleet: FakeFleet, namespace: str, name: str, **values: Any) -> FakePod:
    return fleet.add(FakePod(namespace, name, **values))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_prometheus()
    d = Path(tmp_path_factory.mktemp("cluster"))
    fleet = FakeFleet(d / "targets.json")
    text = TextExporter()
    kube = FakeKubeAPI()
    kube.forbidden.add(LOCKED)
    prom = PrometheusProcess(d / "prom", fleet.address, fleet.sd_file, extra_scrape=text.scrape_config())
    now = float(int(time.time()))  # whole seconds: the API's timestamps are
    for namespace in (PROD, LOCKED, PLAIN):
        # Two pods at 16 running each: 32 in flight, 4 replicas at 8, for each of three names.
        long = kube.add_deployment(namespace, LONG, 2, template_hash="5d4f8b7c9f")
        llama = kube.add_deployment(namespace, "llama", 2)
        for rs in (long.replicasets[0], llama.replicasets[0]):
            for suffix in ("x2kqp", "b7wzq"):
                pod = kube.add_pod(rs, suffix, now - 600, now - 520)
                _serving(fleet, namespace, pod.name, running=16, gpu_util_percent=())
        # Other workloads whose names start with "llama-": a StatefulSet's pod and a Job's pod.
        for name, kind, owner, running in (
            ("llama-canary-0", "StatefulSet", "llama-canary", 120.0),
            ("llama-warmup-x7k2p", "Job", "llama-warmup", 80.0),
        ):
            kube.pods.append(FakeKubePod(namespace, name, now - 900, now - 800, owner=(kind, owner)))
            _serving(fleet, namespace, name, running=running, gpu_util_percent=())
    # A rolling update in progress: spec 3, three Ready pods of the old ReplicaSet, one surge pod of the
    # new one loading (scraped, up == 0). Demand: 24 in flight, 3 replicas at 8.
    for namespace in (PROD, LOCKED):
        rolling = kube.add_deployment(namespace, "rolling", 3)
        for suffix in ("h4mnd", "r9tvc", "k5ljs"):
            pod = kube.add_pod(rolling.replicasets[0], suffix, now - 3000, now - 2900)
            _serving(fleet, namespace, pod.name, running=8, gpu_util_percent=())
        surge = kube.add_pod(kube.rollout(rolling, "6b5c4d7f8"), "w8fgz", now - 20)
        _serving(fleet, namespace, surge.name, scrape_ok=False, gpu_util_percent=())
    # The first step from zero loading: 3 pods created 20 s ago, none Ready, all scraped with up == 0;
    # 20 requests wait at the gateway (KEDA HTTP add-on's interceptor, in its own namespace).
    first = kube.add_deployment(PROD, "first", 3)
    for suffix in ("d2hrb", "g7vns", "t4qzk"):
        pod = kube.add_pod(first.replicasets[0], suffix, now - 20)
        _serving(fleet, PROD, pod.name, scrape_ok=False, gpu_util_percent=())
    # One Ready pod whose scrape fails: unreadable, not warming.
    broken = kube.add_deployment(PROD, "broken", 2)
    for suffix, ok in (("x2kqp", True), ("b7wzq", False)):
        pod = kube.add_pod(broken.replicasets[0], suffix, now - 900, now - 800)
        _serving(fleet, PROD, pod.name, running=1, scrape_ok=ok, gpu_util_percent=())
    # Scraped twice (a PodMonitor and a ServiceMonitor): 3 waiting + 5 running, once.
    twice = kube.add_deployment(PROD, "twice", 1)
    pod = kube.add_pod(twice.replicasets[0], "h4mnd", now - 900, now - 800)
    _serving(
        fleet, PROD, pod.name, waiting=3, running=5, extra_jobs=("llm-serving/vllm-svc",), gpu_util_percent=()
    )
    # GPU target but dcgm-exporter never maps these pods: the GPU signal is a configuration problem.
    nogpu = kube.add_deployment(PROD, "nogpu", 4)
    for suffix in ("h4mnd", "r9tvc", "k5ljs", "w8fgz"):
        pod = kube.add_pod(nogpu.replicasets[0], suffix, now - 3000, now - 2900)
        _serving(fleet, PROD, pod.name, running=2, gpu_util_percent=())
    # GPU average over Ready pods: two Ready at 90 %, one loading (its GPU idle at 0 %).
    gpu = kube.add_deployment(PROD, "gpu", 3)
    for suffix, ready in (("h4mnd", True), ("r9tvc", True), ("k5ljs", False)):
        pod = kube.add_pod(gpu.replicasets[0], suffix, now - 900, now - 800 if ready else None)
        _serving(fleet, PROD, pod.name, scrape_ok=ready, gpu_util_percent=(90.0 if ready else 0.0,))
    # Cold starts: three clean start-ups of 90-95 s, one pod whose readiness flapped after two hours (its
    # Ready condition's last transition is then), one that restarted before it became Ready.
    flappy = kube.add_deployment(PROD, "flappy", 5)
    rs = flappy.replicasets[0]
    for suffix, created, ready, restarts in (
        ("h4mnd", now - 600, now - 510, 0),
        ("r9tvc", now - 500, now - 408, 0),
        ("k5ljs", now - 400, now - 305, 0),
        ("w8fgz", now - 3 * 3600, now - 3 * 3600 + 7300, 0),
        ("c6pxm", now - 800, now - 400, 2),
    ):
        pod = kube.add_pod(rs, suffix, created, ready, restarts=restarts)
        _serving(fleet, PROD, pod.name, running=1, gpu_util_percent=())
    # A scale-down just now: the API lists two pods of spec 2; the third is gone from it, but its series
    # are still in Prometheus (a deleted pod's stay in a rate window's range; a terminating pod is scraped
    # while it drains). 100 generated tokens/s each, 4 running each. In "dropped" the third pod will stop
    # being scraped during the test, as a deleted pod does.
    for name in ("shrunk", "dropped"):
        rs = kube.add_deployment(PROD, name, 2).replicasets[0]
        for suffix in ("h4mnd", "r9tvc", "k5ljs"):
            pod_name = generated_pod_name(rs.name, suffix)
            if suffix != "k5ljs":
                pod_name = kube.add_pod(rs, suffix, now - 900, now - 800).name
            _serving(fleet, PROD, pod_name, running=4, generation_tokens_per_s=100.0, gpu_util_percent=())
    # A StatefulSet named as the ScaledObject's deployment key.
    kube.pods.append(FakeKubePod(PROD, "canary-0", now - 900, now - 800, owner=("StatefulSet", "canary")))
    _serving(fleet, PROD, "canary-0", running=1, gpu_util_percent=())

    route = 'interceptor_request_concurrency{namespace="keda",route_name="first",route_namespace='
    text.body = (
        f'{route}"{PROD}"}} 20\n'
        f'{route}"other"}} 500\n'
        f'tenant_queue{{tenant="{PROD}"}} 7\n'
        + "\n".join(line for line in kube_state_metrics(kube).splitlines() if f'namespace="{LOCKED}"' in line)
        + "\n"
    )
    prom.start()
    expected = len(fleet.pods) + sum(len(p.extra_jobs) for p in fleet.pods.values())
    prom.wait_until(f'count(up{{job!~"dcgm|text"}}) == {expected}', lambda r: bool(r))
    prom.wait_until("count(kube_pod_owner) > 0 and on() count(interceptor_request_concurrency) == 2", bool)
    kubeconfig = kube.write_kubeconfig(d / "kubeconfig")
    yield World(fleet, text, kube, prom, kubeconfig)
    prom.stop()
    kube.close()
    text.close()
    fleet.close()


def _scaler(world: World, kubernetes: str, **extra: Any) -> ScalerThread:
    return ScalerThread(
        ServeOptions(
            grpc_port=0,
            metrics_port=0,
            bind_address="127.0.0.1",
            prometheus_url=world.prometheus.url,
            rate_window=RATE_WINDOW,
            history_step_s=1.0,
            staleness_s=30,
            kubernetes=kubernetes,
            **extra,
        )
    ).start()


@pytest.fixture(scope="module")
def with_kube(world: World) -> Iterator[ScalerThread]:
    s = _scaler(world, str(world.kubeconfig))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def by_name(world: World) -> Iterator[ScalerThread]:
    s = _scaler(world, "off")
    yield s
    s.stop()


def _stub(scaler: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]) -> Any:
    return keda_pb[1].ExternalScalerStub(grpc.insecure_channel(scaler.address))


def _ref(keda_pb: tuple[ModuleType, ModuleType], namespace: str, deployment: str, **meta: str) -> Any:
    metadata = {**BASE, "deployment": deployment, **meta}
    return keda_pb[0].ScaledObjectRef(name=f"{deployment}-so", namespace=namespace, scalerMetadata=metadata)


def _value(scaler: ScalerThread, keda_pb: tuple[ModuleType, ModuleType], ref: Any) -> int:
    stub = _stub(scaler, keda_pb)
    req = keda_pb[0].GetMetricsRequest(
        scaledObjectRef=ref, metricName=f"llm-{ref.scalerMetadata['deployment']}"
    )
    return int(stub.GetMetrics(req, timeout=RPC_DEADLINE_S).metricValues[0].metricValue)


def _gauge(scaler: ScalerThread, name: str, key: tuple[str, str, str], **extra: str) -> float | None:
    """A per-ScaledObject series as the metrics port serves it."""
    labels = dict(zip(("namespace", "scaledobject", "deployment"), key, strict=True), **extra)
    value = scaler.server.telemetry.registry.get_sample_value(f"llm_scaler_{name}", labels)
    return None if value is None else float(value)


def _source(scaler: ScalerThread, ref: Any) -> str:
    key = (ref.namespace, ref.name, ref.scalerMetadata["deployment"])
    for source in ("kubernetes", "kube-state-metrics", "metrics"):
        if _gauge(scaler, "replica_source_info", key, source=source) == 1:
            return source
    return "none"


# -- pods by ownership, not by name -----------------------------------------------------------------------


@pytest.mark.parametrize("namespace", [PROD, LOCKED, PLAIN])
def test_a_49_character_deployment_is_read_as_kubernetes_names_its_pods(
    world: World, with_kube: ScalerThread, by_name: ScalerThread, keda_pb: tuple[ModuleType, ModuleType],
    namespace: str,
) -> None:  # fmt: skip
    # The pods are <49>-<8 chars of the hash><5 random>: no hyphen before the suffix.
    assert generated_pod_name(f"{LONG}-5d4f8b7c9f", "x2kqp") == f"{LONG}-5d4f8b7cx2kqp"
    scaler = by_name if namespace == PLAIN else with_kube
    ref = _ref(keda_pb, namespace, LONG)
    assert _value(scaler, keda_pb, ref) == 4  # 2 x 16 in flight at 8; it answered 0, inactive
    assert _stub(scaler, keda_pb).IsActive(ref, timeout=RPC_DEADLINE_S).result is True


@pytest.mark.parametrize("namespace", [PROD, LOCKED, PLAIN])
def test_other_workloads_pods_are_not_the_deployments(
    world: World, with_kube: ScalerThread, by_name: ScalerThread, keda_pb: tuple[ModuleType, ModuleType],
    namespace: str,
) -> None:  # fmt: skip
    # PROD by ownership from the Kubernetes API, LOCKED from kube-state-metrics, PLAIN by name.
    scaler = by_name if namespace == PLAIN else with_kube
    # llama-canary-0 (a StatefulSet's, 120 running) and llama-warmup-x7k2p (a Job's, 80) are not llama's:
    # with them it answered 29.
    assert _value(scaler, keda_pb, _ref(keda_pb, namespace, "llama")) == 4


def test_by_name_explain_says_it_is_guessing(world: World) -> None:
    out = _explain(world, PLAIN, "llama", "--kubernetes", "off")
    assert out["details"]["replica_source"] == "metrics"
    assert "guess" in out["details"]["notes"]["pods"]


def test_a_statefulset_is_refused_with_a_clear_error(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _value(with_kube, keda_pb, _ref(keda_pb, PROD, "canary"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "StatefulSet" in (info.value.details() or "")


# -- rollouts are not demand -------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", [PROD, LOCKED])
def test_a_rolling_updates_surge_pod_is_not_capacity_or_demand(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType], namespace: str
) -> None:
    ref = _ref(keda_pb, namespace, "rolling")
    # 24 in flight at 8 against spec.replicas 3: 3. Counting the surge pod held the answer at 4, which the
    # HPA applied, and the Deployment surged again (the ratchet; see test_rollout_scenario.py).
    assert _value(with_kube, keda_pb, ref) == 3
    key = (namespace, ref.name, "rolling")
    assert (_gauge(with_kube, "current_replicas", key), _gauge(with_kube, "warming_replicas", key)) == (3, 0)


# -- loading pods are warming, not unreadable --------------------------------------------------------------


def test_the_first_step_loading_with_up_0_keeps_sizing_from_zero(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    ref = _ref(keda_pb, PROD, "first", targetQueuePerReplica="4", activationQuery=GATEWAY)
    # 20 waiting at the gateway, 4 per replica: 5, not no-data (UNAVAILABLE) while the 3 pods load.
    assert _value(with_kube, keda_pb, ref) == 5
    key = (PROD, ref.name, "first")
    assert _gauge(with_kube, "warming_replicas", key) == 3


def test_a_ready_pod_whose_scrape_fails_is_still_unreadable(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    # 1 in flight asks 1 replica; one of the two Ready pods cannot be read, so the fleet is held at 2.
    ref = _ref(keda_pb, PROD, "broken")
    assert _value(with_kube, keda_pb, ref) == 2
    out = _explain(world, PROD, "broken", "--kubernetes", str(world.kubeconfig))
    assert out["reason"] == "hold-missing-data"


# -- a scale-down's deleted pod -----------------------------------------------------------------------------


def test_a_pod_just_deleted_still_counts_in_rates_not_in_gauges(world: World) -> None:
    # The API lists 2 pods; the third's served tokens are still in the rate window. Its rate counts (300
    # tokens/s at 100 per replica asks 3; the live pods alone read 200 and asked 2, and the next refresh
    # would shrink again on the reading the first shrink made low), its 4 running requests do not (8 at 4).
    # First a whole rate window of the three pods' counters, read straight from Prometheus.
    each = f'rate(vllm:generation_tokens_total{{namespace="{PROD}", pod=~"shrunk-.*"}}[{RATE_WINDOW}])'
    world.prometheus.wait_until(f"count({each} > 95) == 3", bool)
    out = _explain(
        world, PROD, "shrunk", "--kubernetes", str(world.kubeconfig),
        targetQueuePerReplica="4", targetTokensPerSecondPerReplica="100",
    )  # fmt: skip
    assert out["signals"]["tokens"]["value"] == pytest.approx(300.0, rel=0.05)
    assert out["signals"]["queue"]["value"] == 8
    assert (out["current_replicas"], out["ready_replicas"]) == (2, 2)
    assert "1 pod(s) gone within the rate window: shrunk-" in out["details"]["notes"]["departed"]


def test_a_deleted_pods_rate_still_counts_after_its_last_scrape_within_the_window(world: World) -> None:
    # Prometheus itself: once the pod is no longer scraped (staleness-marked, gone from `up`), a range over
    # the rate window still holds its samples, so its rate is still returned until they age out. Read
    # with a 30 s window: its share falls from 100 to 0 tokens/s over the 30 s after its last scrape.
    pod = generated_pod_name("dropped-5d4f8b7c9", "k5ljs")
    each = f'rate(vllm:generation_tokens_total{{namespace="{PROD}", pod=~"dropped-.*"}}[30s])'
    world.prometheus.wait_until(f"count({each} > 95) == 3", bool, timeout_s=60.0)
    world.fleet.remove(PROD, pod)
    world.prometheus.wait_until(f'absent(up{{namespace="{PROD}", pod="{pod}"}})', bool)
    out = _explain(
        world, PROD, "dropped", "--kubernetes", str(world.kubeconfig), "--rate-window", "30s",
        targetQueuePerReplica="4", targetTokensPerSecondPerReplica="100",
    )  # fmt: skip
    # the two live pods' 200, and what is left of the gone one's 100 (most of it, read seconds after)
    assert 215.0 < out["signals"]["tokens"]["value"] < 310.0
    assert out["signals"]["queue"]["value"] == 8
    assert f"1 pod(s) gone within the rate window: {pod}" in out["details"]["notes"]["departed"]


# -- the same pods scraped twice ---------------------------------------------------------------------------


def test_a_pod_scraped_by_two_jobs_is_counted_once(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    # 3 waiting + 5 running = 8 at 4 per replica: 2 (summing both jobs read 16 and asked 4).
    assert _value(with_kube, keda_pb, _ref(keda_pb, PROD, "twice", targetQueuePerReplica="4")) == 2


# -- GPU: missing for good is a configuration problem; averaged over Ready pods ---------------------------


def test_gpu_series_that_never_arrive_do_not_hold_the_fleet(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    ref = _ref(keda_pb, PROD, "nogpu", targetQueuePerReplica="4", targetGpuUtilization="50")
    # 4 x 2 in flight at 4: the queue asks 2. Missing GPU series held the fleet at 4 forever as missing
    # data; since the core's rewrite the 4 running replicas are kept warm until idling them costs more
    # than a cold start (keep-warm), which is that floor's business, not the GPU's.
    value = _value(with_kube, keda_pb, ref)
    out = _explain(world, PROD, "nogpu", "--kubernetes", str(world.kubeconfig),
                   targetQueuePerReplica="4", targetGpuUtilization="50")  # fmt: skip
    assert out["signals"]["gpu"]["status"] == "unconfigured"
    assert "configuration" in out["signals"]["gpu"]["note"]
    assert out["signals"]["queue"]["desired_replicas"] == 2
    assert out["reason"] != "hold-missing-data"
    assert {f["kind"] for f in out["floors"]} <= {"keep-warm", "headroom"}, out["floors"]
    assert out["desired_replicas"] == max([2, *(f["replicas"] for f in out["floors"])])
    assert value in (2, out["desired_replicas"])


def test_gpu_average_is_over_ready_pods(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    ref = _ref(keda_pb, PROD, "gpu", targetGpuUtilization="50")
    del ref.scalerMetadata["targetQueuePerReplica"]
    # Two Ready pods at 90 %: ceil(2 x 90 / 50) = 4. With the loading pod's idle GPU the average read 60 %.
    assert _value(with_kube, keda_pb, ref) == 4
    key = (PROD, ref.name, "gpu")
    assert _gauge(with_kube, "signal_value", key, signal="gpu") == pytest.approx(90.0)


# -- cold-start samples only from clean start-ups ----------------------------------------------------------


def test_a_readiness_flap_does_not_poison_the_learned_cold_start(world: World) -> None:
    out = _explain(world, PROD, "flappy", "--kubernetes", str(world.kubeconfig))
    # p90 of 90, 92, 95 s; the flap (7,300 s) and the pod that restarted are left out, and explain says so.
    assert out["details"]["cold_start_s"] == pytest.approx(94.4)
    assert out["cold_start_samples_s"] == [90.0, 92.0, 95.0]
    assert "left out" in out["details"]["notes"]["cold_start"]


# -- one namespace without the RoleBinding ----------------------------------------------------------------


def test_a_forbidden_namespace_falls_back_alone(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    prod, locked = _ref(keda_pb, PROD, "rolling"), _ref(keda_pb, LOCKED, "rolling")
    _value(with_kube, keda_pb, prod), _value(with_kube, keda_pb, locked)
    assert (_source(with_kube, prod), _source(with_kube, locked)) == ("kubernetes", "kube-state-metrics")


# -- waking from zero --------------------------------------------------------------------------------------


def test_scale_to_zero_without_an_activation_query_is_refused_naming_the_fix(
    with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    ref = _ref(keda_pb, PROD, "llama", scaleToZero="true")
    with pytest.raises(grpc.RpcError) as info:
        _stub(with_kube, keda_pb).GetMetricSpec(ref, timeout=RPC_DEADLINE_S)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert "activationQuery" in details and 'scaleToZero: "false"' in details and "minReplicaCount" in details


def test_an_http_add_on_activation_query_pinned_by_route_namespace_wakes_from_zero(
    world: World, with_kube: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    ref = _ref(keda_pb, PROD, "idle", targetQueuePerReplica="4", scaleToZero="true", activationQuery=GATEWAY)
    world.kube.add_deployment(PROD, "idle", 0)
    # 20 waiting for route prod/first, at 4 per replica: 5 (the other namespace's 500 are never read).
    assert _value(with_kube, keda_pb, ref) == 5
    for query in (
        'sum(interceptor_request_concurrency{route_namespace="other"})',
        f'sum(interceptor_request_concurrency{{route_namespace="{PROD}", namespace="keda"}})',
        f'sum(tenant_queue{{tenant="{PROD}"}})',
    ):
        with pytest.raises(grpc.RpcError) as info:
            _stub(with_kube, keda_pb).GetMetricSpec(
                _ref(keda_pb, PROD, "idle", activationQuery=query), timeout=RPC_DEADLINE_S
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, query


def test_a_server_flag_adds_namespace_labels(world: World, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    scaler = _scaler(world, str(world.kubeconfig), activation_namespace_labels=("tenant",))
    try:
        query = f'sum(tenant_queue{{tenant="{PROD}"}})'
        ref = _ref(
            keda_pb, PROD, "idle", targetQueuePerReplica="4", scaleToZero="true", activationQuery=query
        )
        assert _value(scaler, keda_pb, ref) == 2  # 7 waiting at 4 per replica
    finally:
        scaler.stop()


def _explain(world: World, namespace: str, deployment: str, *flags: str, **meta: str) -> dict[str, Any]:
    metadata = {**BASE, "deployment": deployment, **meta}
    args = [
        sys.executable, "-m", "scaler", "explain", "-o", "json", "--prometheus-url", world.prometheus.url,
        "--rate-window", RATE_WINDOW, "--history-step-seconds", "1", "--namespace", namespace,
        "--name", f"{deployment}-so", *flags, "--metadata", *(f"{k}={v}" for k, v in metadata.items()),
    ]  # fmt: skip
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": ""}
    )
    assert out.returncode in (0, 3), out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc
