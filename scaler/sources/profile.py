"""Backend profiles: which Prometheus series give each signal, as data (no class hierarchy).

Metric names and units are from ../shared/metrics/REFERENCE.md (vLLM 0.33.0, Triton core, dcgm-exporter).
Every series is expected to carry ``namespace`` and ``pod`` labels, as the Prometheus Operator adds them
for a PodMonitor (and dcgm-exporter with ``-k`` for GPU series).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scaler.core.config import Backend, LatencyMetric, ScalerConfig, TritonBackend
from scaler.sources.spec import Matcher


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
class LabelledGauge:
    """A gauge family whose sub-label says what each series counts (TensorRT-LLM's
    ``nv_trt_llm_request_metrics{request_type="waiting"}``): read as one query grouped by that label."""

    metric: str
    label: str
    values: tuple[str, ...]

    def matcher(self) -> Matcher:
        return Matcher(self.label, "=~", "|".join(self.values))


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
    # The prefix of this profile's query kinds (``vllm:queue``), and its name in explain: one per shape,
    # since a Triton Deployment may be any of three.
    key: str = ""
    shape: str = ""
    # Matchers added to the queue query (TensorRT-LLM: the request types that are in flight).
    queue_matchers: tuple[Matcher, ...] = ()
    # TensorRT-LLM: running and waiting from the request types (a release without ``waiting`` derives it
    # from ``active - scheduled``), and the KV-cache blocks (``fraction``, or ``used / max`` without it).
    request_types: LabelledGauge | None = None
    kv_blocks: LabelledGauge | None = None
    # TensorRT-LLM: a monotonic gauge of executor iterations (its rate is iterations/s, so one iteration,
    # the step, is 1 / rate), and the per-iteration gauges of the batch (prompt tokens in it, requests
    # decoding): times iterations/s, the token throughput of a release without the token-length histograms.
    iteration_counter: LabelledGauge | None = None
    batch_tokens: LabelledGauge | None = None
    # Only the models that export the presence metric are this Deployment's when no ``model`` is set (a
    # TensorRT-LLM ensemble's preprocessing and postprocessing models report requests and latency too).
    models_from_presence: bool = False
    # Where each signal comes from, for explain (signal -> metric and how it is read).
    sources: tuple[tuple[str, str], ...] = ()

    @property
    def has_engine(self) -> bool:
        return self.requests_counter is not None and self.prompt_counter is not None


# vLLM's latency histograms, the same whether vLLM serves alone or as Triton's vLLM backend.
_VLLM_LATENCY: dict[LatencyMetric, tuple[LatencySource, ...]] = {
    LatencyMetric.E2E: (
        LatencySource(LatencyKind.HISTOGRAM, "vllm:e2e_request_latency_seconds_bucket", 1.0),
    ),
    LatencyMetric.TTFT: (
        LatencySource(LatencyKind.HISTOGRAM, "vllm:time_to_first_token_seconds_bucket", 1.0),
    ),
}


VLLM = BackendProfile(
    backend=Backend.VLLM,
    model_label="model_name",
    presence_metric="vllm:num_requests_running",
    queue_metrics=("vllm:num_requests_waiting", "vllm:num_requests_running"),
    throughput_counters=("vllm:generation_tokens_total", "vllm:prompt_tokens_total"),
    latency=_VLLM_LATENCY,
    series_labels=("engine",),
    running_metric="vllm:num_requests_running",
    waiting_metric="vllm:num_requests_waiting",
    requests_counter="vllm:request_success_total",
    prompt_counter="vllm:prompt_tokens_total",
    generation_counter="vllm:generation_tokens_total",
    step_histogram="vllm:inter_token_latency_seconds",
    key="vllm",
    shape="vLLM",
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
    key="triton",
    shape="Triton (generic backend)",
    sources=(
        ("queue", "nv_inference_pending_request_count (requests not yet started by a backend instance)"),
        ("tokens", "rate(nv_inference_count): inferences/s, not tokens"),
        (
            "latency",
            "nv_inference_request_summary_us, else the mean of nv_inference_request_duration_us; "
            "ttft: nv_inference_first_response_histogram_ms",
        ),
    ),
)

# Triton's TensorRT-LLM backend (in-flight batching): requests go to the TRT-LLM executor at once, so
# nv_inference_pending_request_count stays near 0 and the queue is the executor's. Two label-value
# generations (../shared/metrics/REFERENCE.md): older releases have no request_type="waiting" and no
# kv_cache_block_type="fraction". The queue sums "waiting" and "active": in both it is everything the
# executor holds (older: active alone, which includes the unscheduled).
TRT_LLM_REQUESTS = "nv_trt_llm_request_metrics"
TRT_LLM_KV_BLOCKS = "nv_trt_llm_kv_cache_block_metrics"
TRT_LLM_GENERAL = "nv_trt_llm_general_metrics"
TRT_LLM_BATCH = "nv_trt_llm_inflight_batcher_metrics"
TRT_LLM_ITERATIONS = f'{TRT_LLM_GENERAL}{{general_type="iteration_counter"}}'
TRITON_TRTLLM = BackendProfile(
    backend=Backend.TRITON,
    model_label="model",
    presence_metric=TRT_LLM_REQUESTS,
    queue_metrics=(TRT_LLM_REQUESTS,),
    queue_matchers=(Matcher("request_type", "=~", "waiting|active"),),
    # Histograms whose _sum is a cumulative token counter (later releases; label response_metric_type).
    throughput_counters=("nv_llm_output_token_len_sum", "nv_llm_input_token_len_sum"),
    latency={
        LatencyMetric.E2E: TRITON.latency[LatencyMetric.E2E],
        # First response: for a streaming (decoupled) model the first chunk, i.e. the first token.
        LatencyMetric.TTFT: TRITON.latency[LatencyMetric.TTFT],
    },
    series_labels=("version", "request_type", "response_metric_type"),
    # One input-token observation per request: its _count is the requests finished.
    requests_counter="nv_llm_input_token_len_count",
    prompt_counter="nv_llm_input_token_len_sum",
    generation_counter="nv_llm_output_token_len_sum",
    key="triton-trtllm",
    shape="Triton TensorRT-LLM (in-flight batching)",
    request_types=LabelledGauge(TRT_LLM_REQUESTS, "request_type", ("waiting", "active", "scheduled")),
    kv_blocks=LabelledGauge(TRT_LLM_KV_BLOCKS, "kv_cache_block_type", ("fraction", "used", "max")),
    iteration_counter=LabelledGauge(TRT_LLM_GENERAL, "general_type", ("iteration_counter",)),
    batch_tokens=LabelledGauge(
        TRT_LLM_BATCH, "inflight_batcher_specific_metric", ("total_context_tokens", "generation_requests")
    ),
    models_from_presence=True,
    sources=(
        (
            "queue",
            f'{TRT_LLM_REQUESTS}{{request_type=~"waiting|active"}} (the executor\'s requests; '
            "nv_inference_pending_request_count stays near 0 for this backend)",
        ),
        ("running", f'{TRT_LLM_REQUESTS}{{request_type="active"}}; without "waiting": "scheduled"'),
        ("waiting", f'{TRT_LLM_REQUESTS}{{request_type="waiting"}}; without it: active - scheduled'),
        (
            "tokens",
            "rate(nv_llm_output_token_len_sum) + rate(nv_llm_input_token_len_sum); a pod without them (an "
            f"older release): avg_over_time({TRT_LLM_BATCH}{{inflight_batcher_specific_metric="
            '"total_context_tokens"}) prompt and "generation_requests" generated tokens per iteration, '
            f"times rate({TRT_LLM_ITERATIONS}) iterations/s",
        ),
        ("requests", "rate(nv_llm_input_token_len_count)"),
        (
            "step",
            f"1 / rate({TRT_LLM_ITERATIONS}) per pod (one executor iteration), mean over the Ready pods",
        ),
        ("kv_cache", f'{TRT_LLM_KV_BLOCKS}{{kv_cache_block_type="fraction"}}; without it: used / max'),
        (
            "latency",
            "ttft: nv_inference_first_response_histogram_ms (first response: the first chunk of a "
            "streaming model; needs --metrics-config histogram_latencies=true); e2e: "
            "nv_inference_request_summary_us, else the mean of nv_inference_request_duration_us",
        ),
    ),
)

# Triton's vLLM backend (REPORT_CUSTOM_METRICS): vLLM's token counters and histograms with Triton's
# model/version labels, and no running/waiting gauges; the queue is Triton's own.
TRITON_VLLM = BackendProfile(
    backend=Backend.TRITON,
    model_label="model",
    presence_metric="vllm:prompt_tokens_total",
    queue_metrics=("nv_inference_pending_request_count",),
    throughput_counters=("vllm:generation_tokens_total", "vllm:prompt_tokens_total"),
    latency=_VLLM_LATENCY,
    series_labels=("version",),
    requests_counter="vllm:e2e_request_latency_seconds_count",
    prompt_counter="vllm:prompt_tokens_total",
    generation_counter="vllm:generation_tokens_total",
    step_histogram="vllm:time_per_output_token_seconds",
    key="triton-vllm",
    shape="Triton vLLM backend",
    models_from_presence=True,
    sources=(
        ("queue", "nv_inference_pending_request_count (the vLLM backend exports no running/waiting gauges)"),
        ("tokens", "rate(vllm:generation_tokens_total) + rate(vllm:prompt_tokens_total)"),
        ("requests", "rate(vllm:e2e_request_latency_seconds_count)"),
        ("latency", "vllm:e2e_request_latency_seconds / vllm:time_to_first_token_seconds histograms"),
    ),
)

PROFILES: dict[Backend, BackendProfile] = {VLLM.backend: VLLM, TRITON.backend: TRITON}
# The Triton shapes, in the order auto detection tries them: the first whose presence metric a
# Deployment's pods export is used; generic (always exported) is the fallback.
TRITON_SHAPES: dict[TritonBackend, BackendProfile] = {
    TritonBackend.TENSORRTLLM: TRITON_TRTLLM,
    TritonBackend.VLLM: TRITON_VLLM,
    TritonBackend.GENERIC: TRITON,
}
ALL_PROFILES: tuple[BackendProfile, ...] = (VLLM, *TRITON_SHAPES.values())

# dcgm-exporter: GPU utilisation in percent (0-100), one series per GPU, namespace/pod attached with -k.
DCGM_GPU_UTIL_METRIC = "DCGM_FI_DEV_GPU_UTIL"


def profile_for(backend: Backend) -> BackendProfile:
    return PROFILES[backend]


def candidate_profiles(config: ScalerConfig) -> tuple[BackendProfile, ...]:
    """The profiles a ScaledObject may read, in the order they are tried: one, except for a Triton
    Deployment with ``tritonBackend: auto`` (all three shapes; which one is decided per refresh from the
    series its pods export, with no query of its own)."""
    if config.backend != Backend.TRITON:
        return (profile_for(config.backend),)
    if config.triton_backend == TritonBackend.AUTO:
        return tuple(TRITON_SHAPES.values())
    return (TRITON_SHAPES[config.triton_backend],)


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
