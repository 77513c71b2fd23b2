"""Cold start against the real servers: a real Prometheus on loopback (scraping the fake fleet, a gateway
queue and kube-state-metrics series), the scaler over real gRPC, two scaler processes side by side.

The Kubernetes API is the one stand-in: tests/harness/kube_api.py, a loopback HTTP server answering the
list calls the scaler makes (Deployments, ReplicaSets, pods in a namespace) with real-shaped objects,
because no kube-apiserver can be installed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.serve.server import ScalerThread, ServeOptions
from tests.harness.exporter import FakeFleet, FakePod, kube_state_metrics
from tests.harness.kube_api import FakeKubeAPI, TextExporter
from tests.harness.prometheus import PrometheusProcess, free_port, require_prometheus

NS = "cold"
RATE_WINDOW = "10s"
GATEWAY = f'sum(gateway_pending_requests{{namespace="{NS}", service="llama"}})'
BASE = {"backend": "vllm", "targetQueuePerReplica": "4", "coldStartSeconds": "60"}
# Deployments read without a gateway in front keep one replica: at zero nothing could wake them.
WARM = {**BASE, "scaleToZero": "false"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_prometheus()
    d = tmp_path_factory.mktemp("coldworld")
    fleet = FakeFleet(Path(d) / "targets.json")
    text = TextExporter()
    text.body = f'gateway_pending_requests{{namespace="{NS}",service="llama"}} 0\n'
    kube = FakeKubeAPI()
    prom = PrometheusProcess(
        Path(d) / "prom", fleet.address, fleet.sd_file, extra_scrape=text.scrape_config()
    )
    prom.start()
    now = float(int(time.time()))  # whole seconds, as the API's timestamps are
    # "warm" (spec 5): three Ready pods that started in 40, 45 and 50 s, and two created 20 s ago, still
    # loading (scraped: vLLM binds its port before it listens, so Prometheus records up == 0).
    warm = kube.add_deployment(NS, "warm", 5).replicasets[0]
    for i, start in enumerate((40, 45, 50)):
        pod = kube.add_pod(warm, f"r{'bcd'[i]}hhh", now - 300 + i, now - 300 + i + start)
        fleet.add(FakePod(NS, pod.name, waiting=2, running=2))  # 3 x 4 = 12 in flight
    for i in range(2):
        fleet.add(FakePod(NS, kube.add_pod(warm, f"w{'bcd'[i]}kkk", now - 20).name, scrape_ok=False))
    kube.add_pod(warm, "vldxx", now - 900, now - 800, deleting=True)
    steady = kube.add_deployment(NS, "steady", 1).replicasets[0]
    pod = kube.add_pod(steady, "hhhhh", now - 900, now - 800)
    fleet.add(FakePod(NS, pod.name, waiting=1, running=3, generation_tokens_per_s=50))
    kube.add_deployment(NS, "gone", 0)
    prom.wait_until(f'count(up{{namespace="{NS}"}} == 1) == 4', lambda r: bool(r))
    prom.wait_until(GATEWAY, lambda r: bool(r))
    kubeconfig = kube.write_kubeconfig(Path(d) / "kubeconfig")
    yield {"fleet": fleet, "text": text, "kube": kube, "prometheus": prom, "kubeconfig": kubeconfig}
    prom.stop()
    kube.close()
    text.close()
    fleet.close()


def _options(prom: PrometheusProcess, **extra: Any) -> ServeOptions:
    return ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url=prom.url,
        rate_window=RATE_WINDOW,
        history_step_s=1.0,
        **extra,
    )


def _ref(keda_pb: tuple[ModuleType, ModuleType], name: str, metadata: dict[str, str]) -> Any:
    return keda_pb[0].ScaledObjectRef(name=name, namespace=NS, scalerMetadata=metadata)


def _value(stub: Any, keda_pb: tuple[ModuleType, ModuleType], ref: Any) -> int:
    req = keda_pb[0].GetMetricsRequest(
        scaledObjectRef=ref, metricName=f"llm-{ref.scalerMetadata['deployment']}"
    )
    return int(stub.GetMetrics(req, timeout=20).metricValues[0].metricValue)


def test_demand_at_zero_streams_active_within_3_s_of_being_visible(
    world: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    prom: PrometheusProcess = world["prometheus"]
    # The default refresh period (2 s): the bound must hold as shipped, not only when tuned.
    scaler = ScalerThread(_options(prom)).start()
    try:
        channel = grpc.insecure_channel(scaler.address)
        stub = keda_pb[1].ExternalScalerStub(channel)
        ref = _ref(keda_pb, "gw-so", {**BASE, "deployment": "gw", "activationQuery": GATEWAY})
        stream = stub.StreamIsActive(ref, timeout=60)
        assert next(stream).result is False
        world["text"].body = f'gateway_pending_requests{{namespace="{NS}",service="llama"}} 20\n'
        visible_at = prom.wait_until(
            GATEWAY, lambda r: bool(r) and float(r[0]["value"][1]) == 20.0, poll_s=0.05
        )
        assert next(stream).result is True
        pushed_after_s = time.monotonic() - visible_at
        assert pushed_after_s < 3.0, pushed_after_s
        # Right-sized: a backlog of 20 that appeared at once (no arrival rate yet) at 4 per replica.
        assert _value(stub, keda_pb, ref) == 5
        stream.cancel()
        channel.close()
    finally:
        world["text"].body = f'gateway_pending_requests{{namespace="{NS}",service="llama"}} 0\n'
        scaler.stop()


def test_hostile_activation_query_is_refused_and_never_sent(
    world: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    prom: PrometheusProcess = world["prometheus"]
    scaler = ScalerThread(_options(prom)).start()
    try:
        stub = keda_pb[1].ExternalScalerStub(grpc.insecure_channel(scaler.address))
        for query in ('sum(gateway_pending_requests{namespace="other"})', "up", 'x{namespace=~".+"}'):
            ref = _ref(keda_pb, "bad-so", {**BASE, "deployment": "gw", "activationQuery": query})
            with pytest.raises(grpc.RpcError) as info:
                stub.IsActive(ref, timeout=20)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "activationQuery" in (info.value.details() or "")
        assert not any('namespace="other"' in q or 'namespace=~".+"' in q for q in prom.queries_seen())
    finally:
        scaler.stop()


def test_warming_pods_and_cold_start_come_from_the_kubernetes_api(
    world: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    scaler = ScalerThread(_options(world["prometheus"], kubernetes=str(world["kubeconfig"]))).start()
    try:
        stub = keda_pb[1].ExternalScalerStub(grpc.insecure_channel(scaler.address))
        ref = _ref(keda_pb, "warm-so", {**WARM, "deployment": "warm"})
        # 12 in flight at 4 per replica: 3, and the 2 warming pods are capacity already coming, so the
        # answer stays at the 5 that exist (stabilised: no scale-down of pods still loading).
        assert _value(stub, keda_pb, ref) == 5
        labels = {"namespace": NS, "scaledobject": "warm-so", "deployment": "warm"}

        def get(name: str, **extra: str) -> float | None:
            return scaler.registry.get_sample_value(f"llm_scaler_{name}", {**labels, **extra})

        assert get("warming_replicas") == 2
        assert get("current_replicas") == 5  # the terminating pod is not counted
        assert get("ready_replicas") == 3
        assert get("cold_start_samples") == 3
        assert get("cold_start_seconds") == pytest.approx(49.0)  # p90 of 40, 45, 50
        assert get("replica_source_info", source="kubernetes") == 1
        assert any(r.startswith(f"/api/v1/namespaces/{NS}/pods") for r in world["kube"].requests)
    finally:
        scaler.stop()


def test_kube_state_metrics_are_the_fallback(
    world: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    # kube-state-metrics' view of "warm": spec 2, one pod Ready after 30 s, one loading.
    now = time.time()
    seen = FakeKubeAPI()
    try:
        rs = seen.add_deployment(NS, "warm", 2).replicasets[0]
        seen.add_pod(rs, "rbhhh", now - 300, now - 270)
        seen.add_pod(rs, "wbkkk", now - 20)
        ksm = kube_state_metrics(seen)
    finally:
        seen.close()
    text: TextExporter = world["text"]
    saved = text.body
    text.body = saved + ksm
    prom: PrometheusProcess = world["prometheus"]
    try:
        prom.wait_until(f'kube_pod_created{{namespace="{NS}"}}', lambda r: len(r) == 2)
        out = _explain(world, "--kubernetes", "off")
        assert out["details"]["replica_source"] == "kube-state-metrics"
        assert out["details"]["warming_replicas"] == 1
        # one start seen (30 s): fewer than three, so the larger of it and the 60 s prior
        assert (out["details"]["cold_start_s"], out["details"]["cold_start_samples"]) == (60.0, 1)
    finally:
        text.body = saved
        # The next scrape marks the series stale; wait for it so later tests see no kube-state-metrics.
        prom.wait_until(f'kube_pod_created{{namespace="{NS}"}}', lambda r: not r)


def test_without_kubernetes_or_kube_state_metrics_explain_says_so(world: dict[str, Any]) -> None:
    out = _explain(world, "--kubernetes", "off")
    assert out["details"]["replica_source"] == "metrics"
    assert "no Kubernetes API access and no kube-state-metrics" in out["details"]["notes"]["replicas"]
    assert out["details"]["warming_replicas"] is None


def test_unreachable_kubernetes_api_falls_back_and_says_why(world: dict[str, Any], tmp_path: Path) -> None:
    lost = FakeKubeAPI()
    kubeconfig = lost.write_kubeconfig(tmp_path / "kubeconfig")
    lost.close()  # nothing listens there any more
    out = _explain(world, "--kubernetes", str(kubeconfig))
    assert out["valid"] and out["details"]["replica_source"] == "metrics"
    assert "Kubernetes API unreadable" in out["details"]["notes"]["replicas"]


def _explain(world: dict[str, Any], *flags: str) -> dict[str, Any]:
    args = [
        sys.executable, "-m", "scaler", "explain", "-o", "json", "--prometheus-url", world["prometheus"].url,
        "--rate-window", RATE_WINDOW, "--history-step-seconds", "1", "--namespace", NS, "--name", "warm-so",
        *flags, "--metadata", *(f"{k}={v}" for k, v in {**WARM, "deployment": "warm"}.items()),
    ]  # fmt: skip
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": ""}
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_two_scaler_processes_give_the_same_answers(
    world: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    """KEDA round-robins one connection over the scaler's replicas: any replica must answer the same."""
    prom: PrometheusProcess = world["prometheus"]
    procs, stubs = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "scaler",
                        "serve",
                        "--grpc-port",
                        str(port),
                        "--metrics-port",
                        "0",
                        "--bind-address",
                        "127.0.0.1",
                        "--prometheus-url",
                        prom.url,
                        "--rate-window",
                        RATE_WINDOW,
                        "--history-step-seconds",
                        "1",
                        "--kubernetes",
                        str(world["kubeconfig"]),
                        "--log-level",
                        "warning",
                    ],
                    env={**os.environ, "PYTHONWARNINGS": ""},
                )
            )
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=30)
            stubs.append(keda_pb[1].ExternalScalerStub(channel))
        refs = [
            _ref(keda_pb, "warm-so", {**WARM, "deployment": "warm"}),
            _ref(keda_pb, "steady-so", {**WARM, "deployment": "steady", "coldStartSeconds": "5"}),
            _ref(keda_pb, "gone-so", {**BASE, "deployment": "gone", "activationQuery": GATEWAY}),
        ]
        for ref in refs:
            answers = [(_value(s, keda_pb, ref), s.IsActive(ref, timeout=20).result) for s in stubs]
            assert answers[0] == answers[1], (ref.name, answers)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
