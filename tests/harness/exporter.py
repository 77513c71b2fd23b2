"""A small test exporter: vLLM, Triton and dcgm-exporter series for a set of fake pods, over HTTP.

It speaks the exposition format of ../shared/metrics/*.prom (same names, types, labels and buckets).
Each pod is its own scrape target (``/pods/<namespace>/<pod>/metrics``), listed in a file_sd file, so
Prometheus attaches ``namespace``/``pod`` target labels and an ``up`` series per pod exactly as a
PodMonitor would. GPU series come from one ``/dcgm/metrics`` target with ``namespace``/``pod`` in the
payload (dcgm-exporter ``-k``), scraped with ``honor_labels``.

Counters and histograms are generated from *rates* against the wall clock, so ``rate()`` in Prometheus
returns exactly the configured tokens/s and the configured latency distribution. A pod may be listed
under further scrape jobs (``extra_jobs``), as a ServiceMonitor beside a PodMonitor scrapes it again.
``kube_state_metrics`` renders kube-state-metrics' series for the Kubernetes stand-in's world.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scaler.sources.profile import VLLM_E2E_BUCKETS_S, VLLM_TTFT_BUCKETS_S
from tests.harness.kube_api import FakeKubeAPI, uid

TRITON_FIRST_RESPONSE_MS_BUCKETS = (100.0, 500.0, 2000.0, 5000.0)


@dataclass
class FakePod:
    """What one pod reports. Latencies are the fixed latency of every request (a point distribution),
    so the expected quantile is known exactly up to Prometheus' linear interpolation."""

    namespace: str
    name: str
    backend: str = "vllm"  # "vllm" | "triton"
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    waiting: float = 0.0
    running: float = 0.0
    generation_tokens_per_s: float = 0.0
    prompt_tokens_per_s: float = 0.0
    requests_per_s: float = 0.0
    e2e_latency_s: float = 1.0
    ttft_s: float = 0.05
    gpu_util_percent: tuple[float, ...] = (0.0,)
    scrape_ok: bool = True  # False: /metrics answers 500, so Prometheus records up == 0
    # Further scrape jobs for the same pod, as a ServiceMonitor beside the PodMonitor makes: each has its
    # own job/service/endpoint labels, so every series of the pod is in Prometheus once per job.
    extra_jobs: tuple[str, ...] = ()
    summary_latencies: bool = False  # Triton --metrics-config summary_latencies=true
    # Triton only: which backend serves the model. "generic" exports nv_inference_* (``waiting`` is the
    # pending count); "tensorrtllm" adds the TRT-LLM families (``waiting``/``running`` are the executor's,
    # pending stays 0); "vllm" adds Triton's vLLM-backend re-exports (vllm:* with model/version labels).
    triton_backend: str = "generic"
    # TensorRT-LLM label-value generation: "new" has request_type="waiting" and kv "fraction"; "old" has
    # neither (its "active" holds the waiting ones too, "scheduled" the running).
    trtllm_release: str = "new"
    kv_cache_fraction: float = 0.25
    # TensorRT-LLM executor iterations per second (nv_trt_llm_general_metrics{general_type=
    # "iteration_counter"}, a monotonic gauge); each iteration's batch holds prompt_tokens_per_s /
    # iterations_per_s context tokens (total_context_tokens) and ``running`` decoding requests.
    iterations_per_s: float = 0.0
    _t0: float = field(default_factory=time.time)
    _base: dict[str, float] = field(default_factory=dict)

    def _counter(self, key: str, per_s: float, now: float) -> float:
        # Counters restart from the current accumulated value when the rate changes (see set_rates).
        return self._base.get(key, 1000.0) + per_s * (now - self._t0)

    def set(self, **changes: object) -> None:
        """Change values; counters keep their accumulated totals (no spurious reset)."""
        now = time.time()
        for key in ("gen", "prompt", "req", "iter"):
            self._base[key] = self._counter(key, self._rate(key), now)
        for name in ("e2e", "ttft"):
            bounds = (*VLLM_E2E_BUCKETS_S, *VLLM_TTFT_BUCKETS_S, *TRITON_FIRST_RESPONSE_MS_BUCKETS, math.inf)
            for le in bounds:
                k = f"{name}:{le}"
                self._base[k] = self._bucket(name, le, now)
        self._base["e2e_sum"] = self._counter("e2e_sum", self.requests_per_s * self.e2e_latency_s, now)
        self._t0 = now
        for k, v in changes.items():
            setattr(self, k, v)

    def _rate(self, key: str) -> float:
        return {
            "gen": self.generation_tokens_per_s,
            "prompt": self.prompt_tokens_per_s,
            "req": self.requests_per_s,
            "iter": self.iterations_per_s,
        }[key]

    def _bucket(self, name: str, le: float, now: float, seconds: bool = False) -> float:
        latency = self.e2e_latency_s if name == "e2e" else self.ttft_s
        if name == "ttft" and self.backend == "triton" and not seconds:
            latency *= 1000.0  # Triton's histogram is in ms
        per_s = self.requests_per_s if latency <= le else 0.0
        return self._base.get(f"{name}:{le}", 0.0) + per_s * (now - self._t0)

    def render(self) -> str:
        now = time.time()
        return self._render_vllm(now) if self.backend == "vllm" else self._render_triton(now)

    def _render_vllm(self, now: float) -> str:
        lb = f'engine="0",model_name="{self.model}"'
        out = [
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{lb}}} {self.running}",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{lb}}} {self.waiting}",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{lb}}} 0.25",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{lb}}} {self._counter('prompt', self.prompt_tokens_per_s, now)}",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{lb}}} {self._counter('gen', self.generation_tokens_per_s, now)}",
        ]
        for family, name, buckets, latency in (
            ("vllm:e2e_request_latency_seconds", "e2e", VLLM_E2E_BUCKETS_S, self.e2e_latency_s),
            ("vllm:time_to_first_token_seconds", "ttft", VLLM_TTFT_BUCKETS_S, self.ttft_s),
        ):
            out.append(f"# TYPE {family} histogram")
            for le in (*buckets, math.inf):
                le_text = "+Inf" if le == math.inf else repr(float(le))
                out.append(f'{family}_bucket{{{lb},le="{le_text}"}} {self._bucket(name, le, now)}')
            count = self._bucket(name, math.inf, now)
            out.append(f"{family}_count{{{lb}}} {count}")
            out.append(f"{family}_sum{{{lb}}} {count * latency}")
        return "\n".join(out) + "\n"

    def _render_triton(self, now: float) -> str:
        out = self._render_triton_core(now)
        if self.triton_backend == "tensorrtllm":
            out += self._render_trtllm(now)
        elif self.triton_backend == "vllm":
            out += self._render_triton_vllm(now)
        return "\n".join(out) + "\n"

    def _render_trtllm(self, now: float) -> list[str]:
        """The TensorRT-LLM backend's families (REFERENCE.md "Triton with the TensorRT-LLM backend")."""
        new = self.trtllm_release == "new"
        lb = f'model="{self.model}",version="1"'
        if new:
            types = {"active": self.running, "max": 256.0, "scheduled": self.running, "context": 0.0}
            types["waiting"] = self.waiting
        else:
            active = self.running + self.waiting
            types = {"active": active, "max": 256.0, "scheduled": self.running, "context": 0.0}
        out = ["# TYPE nv_trt_llm_request_metrics gauge"]
        out += [f'nv_trt_llm_request_metrics{{{lb},request_type="{k}"}} {v}' for k, v in types.items()]
        blocks = 4096.0
        used = round(blocks * self.kv_cache_fraction)
        kv = {"max": blocks, "free": blocks - used, "used": float(used), "tokens_per": 64.0}
        if new:
            kv |= {"reused": 0.0, "fraction": used / blocks}
        out.append("# TYPE nv_trt_llm_kv_cache_block_metrics gauge")
        out += [
            f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="{k}",{lb}}} {v}' for k, v in kv.items()
        ]
        out.append("# TYPE nv_trt_llm_inflight_batcher_metrics gauge")
        per_iteration = self.prompt_tokens_per_s / self.iterations_per_s if self.iterations_per_s > 0 else 0.0
        for k, v in (("total_context_tokens", per_iteration), ("generation_requests", self.running)):
            out.append(
                f'nv_trt_llm_inflight_batcher_metrics{{inflight_batcher_specific_metric="{k}",{lb}}} {v}'
            )
        # Both generations: the iteration count (a gauge that only grows) and the iteration's time stamp.
        out.append("# TYPE nv_trt_llm_general_metrics gauge")
        iterations = self._counter("iter", self.iterations_per_s, now) - 1000.0
        for k, v in (("iteration_counter", iterations), ("timestamp", now * 1e6)):
            out.append(f'nv_trt_llm_general_metrics{{general_type="{k}",{lb}}} {v}')
        if not new:
            return out
        requests = self._counter("req", self.requests_per_s, now)
        for family, kind, key, per_s in (
            ("nv_llm_input_token_len", "total_input_tokens", "prompt", self.prompt_tokens_per_s),
            ("nv_llm_output_token_len", "total_output_tokens", "gen", self.generation_tokens_per_s),
        ):
            tokens = self._counter(key, per_s, now)
            per_request = per_s / self.requests_per_s if self.requests_per_s > 0 else 0.0
            tl = f'model="{self.model}",response_metric_type="{kind}",version="1"'
            out.append(f"# TYPE {family} histogram")
            for le in (10.0, 50.0, 100.0, 500.0, 1000.0, math.inf):
                le_text = "+Inf" if le == math.inf else f"{le:g}"
                count = requests if per_request <= le else 0.0
                out.append(f'{family}_bucket{{{tl},le="{le_text}"}} {count}')
            out.append(f"{family}_count{{{tl}}} {requests}")
            out.append(f"{family}_sum{{{tl}}} {tokens}")
        return out

    def _render_triton_vllm(self, now: float) -> list[str]:
        """Triton's vLLM backend re-exports (REPORT_CUSTOM_METRICS): no running/waiting gauges."""
        lb = f'model="{self.model}",version="1"'
        out = [
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{lb}}} {self._counter('prompt', self.prompt_tokens_per_s, now)}",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{lb}}} {self._counter('gen', self.generation_tokens_per_s, now)}",
        ]
        for family, name, buckets, latency in (
            (
                "vllm:e2e_request_latency_seconds",
                "e2e",
                (1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60),
                self.e2e_latency_s,
            ),
            ("vllm:time_to_first_token_seconds", "ttft", VLLM_TTFT_BUCKETS_S, self.ttft_s),
        ):
            out.append(f"# TYPE {family} histogram")
            for le in (*buckets, math.inf):
                le_text = "+Inf" if le == math.inf else repr(float(le))
                count = self._bucket(name, float(le), now, seconds=True)
                out.append(f'{family}_bucket{{{lb},le="{le_text}"}} {count}')
            count = self._bucket(name, math.inf, now)
            out.append(f"{family}_count{{{lb}}} {count}")
            out.append(f"{family}_sum{{{lb}}} {count * latency}")
        return out

    def _render_triton_core(self, now: float) -> list[str]:
        lb = f'model="{self.model}",version="1"'
        requests = self._counter("req", self.requests_per_s, now)
        # Requests go to the TensorRT-LLM executor (and the vLLM engine) at once: nothing is pending.
        pending = self.waiting if self.triton_backend == "generic" else 0.0
        out = [
            "# TYPE nv_inference_request_success counter",
            f"nv_inference_request_success{{{lb}}} {requests}",
            "# TYPE nv_inference_count counter",
            f"nv_inference_count{{{lb}}} {requests}",
            "# TYPE nv_inference_pending_request_count gauge",
            f"nv_inference_pending_request_count{{{lb}}} {pending}",
            "# TYPE nv_inference_request_duration_us counter",
            f"nv_inference_request_duration_us{{{lb}}} "
            f"{self._counter('e2e_sum', self.requests_per_s * self.e2e_latency_s, now) * 1e6}",
            "# TYPE nv_inference_first_response_histogram_ms histogram",
        ]
        for le in (*TRITON_FIRST_RESPONSE_MS_BUCKETS, math.inf):
            le_text = "+Inf" if le == math.inf else f"{le:g}"
            out.append(
                f'nv_inference_first_response_histogram_ms_bucket{{le="{le_text}",{lb}}} '
                f"{self._bucket('ttft', le, now)}"
            )
        count = self._bucket("ttft", math.inf, now)
        out.append(f"nv_inference_first_response_histogram_ms_count{{{lb}}} {count}")
        out.append(f"nv_inference_first_response_histogram_ms_sum{{{lb}}} {count * self.ttft_s * 1000}")
        if self.summary_latencies:
            out.append("# TYPE nv_inference_request_summary_us summary")
            for q in (0.5, 0.9, 0.95, 0.99, 0.999):
                out.append(
                    f'nv_inference_request_summary_us{{{lb},quantile="{q}"}} {self.e2e_latency_s * 1e6}'
                )
            out.append(f"nv_inference_request_summary_us_count{{{lb}}} {requests}")
            out.append(f"nv_inference_request_summary_us_sum{{{lb}}} {requests * self.e2e_latency_s * 1e6}")
        return out


class FakeFleet:
    """Pods and GPUs served over HTTP, with the file_sd target list Prometheus reads."""

    def __init__(self, sd_file: Path) -> None:
        self.sd_file = sd_file
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.extra_series: list[str] = []  # raw lines appended to /dcgm/metrics (e.g. activation gauges)
        self._lock = threading.Lock()
        fleet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, status = fleet._route(self.path)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.write_sd()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _route(self, path: str) -> tuple[str, int]:
        with self._lock:
            if path == "/dcgm/metrics":
                return self._render_dcgm(), 200
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[0] == "pods" and parts[3] == "metrics":
                pod = self.pods.get((parts[1], parts[2]))
                if pod is None:
                    return "no such pod\n", 404
                if not pod.scrape_ok:
                    return "engine not responding\n", 500
                return pod.render(), 200
        return "not found\n", 404

    def _render_dcgm(self) -> str:
        out = ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
        gpu = 0
        for pod in self.pods.values():
            for util in pod.gpu_util_percent:
                out.append(
                    f'DCGM_FI_DEV_GPU_UTIL{{gpu="{gpu % 8}",UUID="GPU-{gpu:08d}",device="nvidia{gpu % 8}",'
                    f'modelName="NVIDIA H100 80GB HBM3",Hostname="node-{gpu // 8}",container="{pod.backend}",'
                    f'namespace="{pod.namespace}",pod="{pod.name}"}} {util}'
                )
                gpu += 1
        # An unallocated GPU, as dcgm-exporter reports it: empty pod and namespace labels.
        out.append(
            'DCGM_FI_DEV_GPU_UTIL{gpu="7",UUID="GPU-idle",device="nvidia7",modelName="NVIDIA H100 80GB HBM3",'
            'Hostname="node-idle",container="",namespace="",pod=""} 0'
        )
        out.extend(self.extra_series)
        return "\n".join(out) + "\n"

    def add(self, pod: FakePod) -> FakePod:
        with self._lock:
            self.pods[(pod.namespace, pod.name)] = pod
        self.write_sd()
        return pod

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self.pods.pop((namespace, name), None)
        self.write_sd()

    def write_sd(self) -> None:
        with self._lock:
            groups = [
                {
                    "targets": [self.address],
                    "labels": {
                        "__metrics_path__": f"/pods/{p.namespace}/{p.name}/metrics",
                        "namespace": p.namespace,
                        "pod": p.name,
                        "job": job,
                        **(
                            {}
                            if job == f"{p.namespace}/{p.backend}"
                            else {"service": job, "endpoint": "http"}
                        ),
                    },
                }
                for p in self.pods.values()
                for job in (f"{p.namespace}/{p.backend}", *p.extra_jobs)
            ]
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.sd_file)  # atomic: Prometheus never reads half a file

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def kube_state_metrics(kube: FakeKubeAPI) -> str:
    """kube-state-metrics' series for the stand-in's world, named and labelled as kube-state-metrics
    exposes them (docs/metrics/workload/{pod,replicaset,deployment}-metrics.md upstream): pods with their
    owner, creation, Ready state and time, phase, restarts and deletion; ReplicaSets with their owner;
    Deployments with spec and status replicas."""
    out = [
        "# TYPE kube_pod_created gauge",
        "# TYPE kube_pod_owner gauge",
        "# TYPE kube_pod_status_ready gauge",
        "# TYPE kube_pod_status_ready_time gauge",
        "# TYPE kube_pod_status_phase gauge",
        "# TYPE kube_pod_container_status_restarts_total counter",
        "# TYPE kube_pod_deletion_timestamp gauge",
    ]
    for p in kube.pods:
        lb = f'namespace="{p.namespace}",pod="{p.name}",uid="{uid("Pod", p.namespace, p.name)}"'
        out.append(f"kube_pod_created{{{lb}}} {p.created_s:.3f}")
        if p.owner is not None:
            out.append(
                f'kube_pod_owner{{{lb},owner_kind="{p.owner[0]}",owner_name="{p.owner[1]}",'
                f'owner_is_controller="true"}} 1'
            )
        for condition in ("true", "false", "unknown"):
            value = int((p.ready_s is not None) == (condition == "true") and condition != "unknown")
            out.append(f'kube_pod_status_ready{{{lb},condition="{condition}"}} {value}')
        if p.ready_s is not None:
            out.append(f"kube_pod_status_ready_time{{{lb}}} {p.ready_s:.3f}")
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            out.append(f'kube_pod_status_phase{{{lb},phase="{phase}"}} {int(p.phase == phase)}')
        out.append(f'kube_pod_container_status_restarts_total{{{lb},container="vllm"}} {p.restarts}')
        if p.deleting:
            out.append(f"kube_pod_deletion_timestamp{{{lb}}} {p.created_s + 1:.3f}")
    out.append("# TYPE kube_replicaset_owner gauge")
    for d in kube.deployments:
        for rs in d.replicasets:
            out.append(
                f'kube_replicaset_owner{{namespace="{rs.namespace}",replicaset="{rs.name}",'
                f'owner_kind="Deployment",owner_name="{d.name}",owner_is_controller="true"}} 1'
            )
    for d in kube.deployments:
        status = d.to_json(kube.pods)["status"]
        assert isinstance(status, dict)
        lb = f'namespace="{d.namespace}",deployment="{d.name}"'
        out.append(f"kube_deployment_spec_replicas{{{lb}}} {d.replicas}")
        out.append(f"kube_deployment_status_replicas{{{lb}}} {status['replicas']}")
        out.append(f"kube_deployment_status_replicas_updated{{{lb}}} {status['updatedReplicas']}")
        out.append(f"kube_deployment_status_replicas_ready{{{lb}}} {status['readyReplicas']}")
    return "\n".join(out) + "\n"
