"""Backend profiles: which Prometheus series give each signal, as data (no class hierarchy).

Metric names and units are from ../shared/metrics/REFERENCE.md (vLLM 0.33.0, Triton core, dcgm-exporter).
Every series is expected to carry ``namespace`` and ``pod`` labels, as the Prometheus Operator adds them
for a PodMonitor (and dcgm-exporter with ``-k`` for GPU series).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scaler.core.config import Backend, LatencyMetric


class LatencyKind(StrEnum):
    HISTOGRAM = "histogram"  # cumulative *_bucket series with an ``le`` label
    SUMMARY = "summary"  # pre-computed per-pod quantiles with a ``quantile`` label
    MEAN = "mean"  # rate(sum counter) / rate(count counter); not a quantile, reported as such


@dataclass(frozen=True)
class LatencySource:
    kind: LatencyKind
    metric: str  # bucket series, summary series, or the duration-sum counter for MEAN
    to_seconds: float  # multiply the metric's unit by this to get seconds
    count_metric: str | None = None  # MEAN only: the request counter


@dataclass(frozen=True)
class BackendProfile:
    """Where one serving backend publishes the numbers the scaler needs."""

    backend: Backend
    model_label: str
    # One series per serving pod (per model): a pod that has it is reporting.
    presence_metric: str
    # Gauges summed per pod: requests in flight.
    queue_metrics: tuple[str, ...]
    # Counters whose summed rate is the throughput signal (tokens/s for vLLM, inferences/s for Triton).
    throughput_counters: tuple[str, ...]
    # Latency sources per metric, tried in order: the first that has data is used.
    latency: dict[LatencyMetric, tuple[LatencySource, ...]]
    # Labels that tell apart a pod's own series of one metric (vLLM's data-parallel engine, Triton's model
    # version). Any other label two series of one pod differ in says how they were scraped (job, instance,
    # service, endpoint: a PodMonitor and a ServiceMonitor on the same pod), so those are counted once.
    series_labels: tuple[str, ...] = ()
    # The engine's own numbers for the capacity model and the projection (None: the backend has none):
    # requests running and waiting (gauges), requests finished (counter), prompt and generated tokens (two of
    # the throughput counters), and the histogram of the time between output tokens (``_sum``/``_count``:
    # its mean is one engine iteration).
    running_metric: str | None = None
    waiting_metric: str | None = None
    requests_counter: str | None = None
    prompt_counter: str | None = None
    generation_counter: str | None = None
    step_histogram: str | None = None

    @property
    def has_engine(self) -> bool:
        return self.requests_counter is not None and self.prompt_counter is not None


VLLM = BackendProfile(
    backend=Backend.VLLM,
    model_label="model_name",
    presence_metric="vllm:num_requests_running",
    queue_metrics=("vllm:num_requests_waiting", "vllm:num_requests_running"),
    throughput_counters=("vllm:generation_tokens_total", "vllm:prompt_tokens_total"),
    latency={
        LatencyMetric.E2E: (
            LatencySource(LatencyKind.HISTOGRAM, "vllm:e2e_request_latency_seconds_bucket", 1.0),
        ),
        LatencyMetric.TTFT: (
            LatencySource(LatencyKind.HISTOGRAM, "vllm:time_to_first_token_seconds_bucket", 1.0),
        ),
    },
    series_labels=("engine",),
    running_metric="vllm:num_requests_running",
    waiting_metric="vllm:num_requests_waiting",
    requests_counter="vllm:request_success_total",
    prompt_counter="vllm:prompt_tokens_total",
    generation_counter="vllm:generation_tokens_total",
    step_histogram="vllm:inter_token_latency_seconds",
)

TRITON = BackendProfile(
    backend=Backend.TRITON,
    model_label="model",
    presence_metric="nv_inference_pending_request_count",
    queue_metrics=("nv_inference_pending_request_count",),
    throughput_counters=("nv_inference_count",),
    latency={
        # Triton's request-duration summary is off by default (--metrics-config summary_latencies=true);
        # without it the mean from the always-on counters is the best there is, and it is labelled "mean".
        LatencyMetric.E2E: (
            LatencySource(LatencyKind.SUMMARY, "nv_inference_request_summary_us", 1e-6),
            LatencySource(
                LatencyKind.MEAN,
                "nv_inference_request_duration_us",
                1e-6,
                count_metric="nv_inference_request_success",
            ),
        ),
        # histogram_latencies=true; default buckets 100, 500, 2000, 5000 ms are coarse but real.
        LatencyMetric.TTFT: (
            LatencySource(LatencyKind.HISTOGRAM, "nv_inference_first_response_histogram_ms_bucket", 1e-3),
        ),
    },
    series_labels=("version",),
)

PROFILES: dict[Backend, BackendProfile] = {VLLM.backend: VLLM, TRITON.backend: TRITON}

# dcgm-exporter: GPU utilisation in percent (0-100), one series per GPU, namespace/pod attached with -k.
DCGM_GPU_UTIL_METRIC = "DCGM_FI_DEV_GPU_UTIL"


def profile_for(backend: Backend) -> BackendProfile:
    return PROFILES[backend]


# vLLM's own histogram buckets (../shared/metrics/REFERENCE.md): the simulator and the test exporter emit
# histograms with these, so what they export is what Prometheus would hold from a real vLLM.
VLLM_TTFT_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
VLLM_E2E_BUCKETS_S = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
# Inter-token latency and per-request time per output token (vllm:inter_token_latency_seconds,
# vllm:request_time_per_output_token_seconds).
VLLM_ITL_BUCKETS_S = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)


def vllm_token_buckets(max_model_len: int) -> tuple[float, ...]:
    """vLLM's 1-2-5 buckets for per-request token counts (vllm:request_prompt_tokens and friends): 1, 2, 5,
    10, 20, 50, ... up to ``max_model_len``. Worked example: 8192 gives 1, 2, 5, ..., 2000, 5000 (12)."""
    out: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_model_len:
                return tuple(out)
            out.append(float(value))
        exponent += 1
