"""The world the dashboards are tested against: the test exporter's vLLM, Triton and DCGM pods, a
loopback Kubernetes API stand-in for warming pods and start-up times, the scaler (real gRPC and metrics
port) answering the ScaledObjects shipped in deploy/scaling, and a real Prometheus scraping all of it
the way the Prometheus Operator would (pod labels on model servers, honorLabels for the scaler)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.serve.server import ScalerThread, ServeOptions
from tests.deploy.support import of_kind, render
from tests.harness.exporter import FakeFleet, FakePod
from tests.harness.kube_api import FakeKubeAPI
from tests.harness.prometheus import PrometheusProcess, free_port, require_prometheus

NS = "dash"
RATE_WINDOW = "10s"
# The first poll registers every ScaledObject and waits for its first read of Prometheus. On two cores
# shared with two simulation workers one took more than the 5 s this used to allow (DEADLINE_EXCEEDED at
# setup errored all 54 dashboard tests). Bounded, and the tests assert the answers, not the time.
FIRST_CONTACT_S = 30.0


@dataclass
class DashboardWorld:
    prometheus: PrometheusProcess
    scaler: ScalerThread
    stub: Any
    keda_pb: tuple[ModuleType, ModuleType]
    refs: dict[str, Any]  # ScaledObject name -> ScaledObjectRef the scaler answers
    bad_ref: Any  # metadata the scaler refuses (INVALID_ARGUMENT)
    deployments: tuple[str, ...]  # Deployments the scaler publishes series for

    def poll(self) -> None:
        """One round of what KEDA does: GetMetricSpec, GetMetrics and IsActive for every ScaledObject.
        UNAVAILABLE is an answer too (the one whose Prometheus is down); anything else fails the test."""
        pb = self.keda_pb[0]
        for ref in self.refs.values():
            request = pb.GetMetricsRequest(
                scaledObjectRef=ref, metricName=f"llm-{ref.scalerMetadata['deployment']}"
            )
            for method, arg in (
                (self.stub.GetMetricSpec, ref),
                (self.stub.GetMetrics, request),
                (self.stub.IsActive, ref),
            ):
                try:
                    method(arg, timeout=FIRST_CONTACT_S)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:  # stale or unreachable data only
                        raise
        try:
            self.stub.GetMetricSpec(self.bad_ref, timeout=FIRST_CONTACT_S)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc


def _shipped_metadata(name: str) -> dict[str, str]:
    """The trigger metadata of deploy/scaling/<name>: the dashboards are tested against what we ship."""
    (so,) = [o for o in of_kind(render("scaling"), "ScaledObject") if o["metadata"]["name"] == name]
    metadata = dict(so["spec"]["triggers"][0]["metadata"])
    if "activationQuery" in metadata:  # pinned to the shipped namespace; here the ScaledObject is in NS
        shipped = so["metadata"]["namespace"]
        metadata["activationQuery"] = metadata["activationQuery"].replace(f'="{shipped}"', f'="{NS}"')
    return metadata


@pytest.fixture(scope="module")
def dashboard_world(
    tmp_path_factory: pytest.TempPathFactory, keda_pb: tuple[ModuleType, ModuleType]
) -> Iterator[DashboardWorld]:
    require_prometheus()
    workdir = Path(tmp_path_factory.mktemp("dashboards"))
    now = time.time()
    fleet = FakeFleet(workdir / "targets.json")
    # llama: two loaded vLLM pods; triton: one Triton + TensorRT-LLM pod with the summary latencies on.
    for suffix, gpu in (("hhhhh", 90.0), ("bbbbb", 60.0)):
        fleet.add(
            FakePod(
                NS,
                f"llama-5d4f8b7c9-{suffix}",
                waiting=3,
                running=5,
                generation_tokens_per_s=400,
                prompt_tokens_per_s=100,
                requests_per_s=2,
                e2e_latency_s=1.2,
                ttft_s=0.2,
                gpu_util_percent=(gpu,),
            )
        )
    fleet.add(
        FakePod(
            NS,
            "triton-7c9d8b6f5-ccccc",
            backend="triton",
            model="tensorrt_llm",
            triton_backend="tensorrtllm",
            waiting=9,
            running=16,
            requests_per_s=50,
            e2e_latency_s=0.8,
            ttft_s=0.3,
            summary_latencies=True,
            gpu_util_percent=(40.0,),
        )
    )
    # cold: no pods, but requests wait at a gateway (the activationQuery): scale from zero.
    fleet.extra_series.append(f'gateway_pending_requests{{namespace="{NS}",deployment="cold"}} 12')
    kube = FakeKubeAPI()
    llama = kube.add_deployment(NS, "llama", 3).replicasets[0]
    kube.add_pod(llama, "hhhhh", now - 600, now - 510)
    kube.add_pod(llama, "bbbbb", now - 400, now - 320)
    kube.add_pod(llama, "wwwww", now - 20)  # warming: created, not Ready yet
    kube.add_pod(
        kube.add_deployment(NS, "triton", 1, "7c9d8b6f5").replicasets[0], "ccccc", now - 900, now - 700
    )
    kube.add_deployment(NS, "cold", 0)
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
    prom_port = free_port()
    scaler = ScalerThread(
        ServeOptions(
            grpc_port=0,
            metrics_port=0,
            bind_address="127.0.0.1",
            prometheus_url=f"http://127.0.0.1:{prom_port}",
            refresh_s=0.5,
            history_step_s=1.0,
            rate_window=RATE_WINDOW,
            staleness_s=30,
            kubernetes=str(kubeconfig),
        )
    ).start()
    # Scraped like deploy/scaler/servicemonitor.yaml: the target's own namespace label is the scaler's,
    # and honor_labels keeps the ScaledObject's namespace on llm_scaler_* series.
    extra = f"""
  - job_name: llm-keda-scaler
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{scaler.server.metrics_port}"]
        labels:
          namespace: llm-keda-scaler
"""
    prometheus = PrometheusProcess(workdir / "prometheus", fleet.address, fleet.sd_file, extra_scrape=extra)
    channel = grpc.insecure_channel(scaler.address)
    # A port that is bound but never listens: connections to it are refused for the fixture's lifetime
    # (a port merely found free could be taken by anything meanwhile).
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    try:
        prometheus.start(port=prom_port)
        grpc.channel_ready_future(channel).result(timeout=10)
        pb, pb_grpc = keda_pb
        refs = {
            "llama": _shipped_metadata("llama"),
            "triton": _shipped_metadata("triton"),
            "cold": {
                "backend": "vllm",
                "deployment": "cold",
                "targetQueuePerReplica": "4",
                # The shipped ScaledObjects leave GPU utilisation out (it reads ~100 % with one request);
                # this one sets it so the Fleet dashboard's GPU target line is exercised too.
                "targetGpuUtilization": "70",
                "activationQuery": f'sum(gateway_pending_requests{{namespace="{NS}", deployment="cold"}})',
                "coldStartSeconds": "60",
            },
            # Its Prometheus is down: query errors, UNAVAILABLE answers.
            "orphan": {
                "backend": "vllm",
                "deployment": "orphan",
                "targetQueuePerReplica": "4",
                "scaleToZero": "false",
                "serverAddress": f"http://127.0.0.1:{dead.getsockname()[1]}",
            },
        }
        world = DashboardWorld(
            prometheus=prometheus,
            scaler=scaler,
            stub=pb_grpc.ExternalScalerStub(channel),
            keda_pb=keda_pb,
            refs={n: pb.ScaledObjectRef(name=n, namespace=NS, scalerMetadata=m) for n, m in refs.items()},
            bad_ref=pb.ScaledObjectRef(
                name="typo",
                namespace=NS,
                scalerMetadata={"backend": "vllm", "deployment": "x", "targetQueue": "4"},
            ),
            deployments=("llama", "triton", "cold", "orphan"),
        )
        world.poll()
        yield world
    finally:
        channel.close()
        dead.close()
        prometheus.stop()
        scaler.stop()
        kube.close()
        fleet.close()
