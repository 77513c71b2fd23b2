"""What the simulated pods expose on ``/metrics``: vLLM's metric families (names, labels, buckets as in vLLM,
../shared/metrics/REFERENCE.md), dcgm-exporter's GPU utilisation, and the gateway's pending requests, as
a column layout (``Schema``) that the fleet fills and the simulated Prometheus (``tsdb``) stores per scrape.

Labels: every vLLM series carries ``model_name`` and ``engine="0"``; the Prometheus Operator adds
``namespace`` and ``pod`` (target labels here). Pods are named as Kubernetes names a Deployment's
(``llm-<pod-template hash>-<5 characters>``), so the history's ReplicaSet prefix and the name matching
work on them as on a cluster's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from prometheus_client.utils import floatToGoString

from scaler.sources.profile import (
    DCGM_GPU_UTIL_METRIC,
    VLLM_E2E_BUCKETS_S,
    VLLM_ITL_BUCKETS_S,
    VLLM_TTFT_BUCKETS_S,
    vllm_token_buckets,
)

NAMESPACE, DEPLOYMENT = "sim", "llm"
# The pod-template hash Kubernetes would give the Deployment's ReplicaSet (characters of 4-9bcdf).
REPLICASET = f"{DEPLOYMENT}-5f7b8c9d4"
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes appends to a generateName (no vowels)
GATEWAY_POD = "gateway-7d9c5b6f8-gwbcd"
GATEWAY_METRIC = "gateway_pending_requests"
FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")
GPU_MODEL_NAME = "NVIDIA H100 80GB HBM3"

Labels = tuple[tuple[str, str], ...]


def le_text(bound: float) -> str:
    """A bucket bound as prometheus_client prints it (vLLM's exposition): 0.25 -> "0.25", 1 -> "1.0"."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


def pod_name(pod_id: int) -> str:
    """``llm-5f7b8c9d4-bbbbj``: the ReplicaSet's name, a hyphen and 5 characters of Kubernetes' suffix
    alphabet (the pod id in base 27), as Kubernetes names a Deployment's pods (``membership.pod_pattern``)."""
    digits = []
    for _ in range(5):
        pod_id, d = divmod(pod_id, len(SUFFIX_ALPHABET))
        digits.append(SUFFIX_ALPHABET[d])
    return f"{REPLICASET}-{''.join(reversed(digits))}"


def pod_id_of(name: str) -> int:
    """The inverse of ``pod_name``."""
    n = 0
    for c in name[-5:]:
        n = n * len(SUFFIX_ALPHABET) + SUFFIX_ALPHABET.index(c)
    return n


@dataclass(frozen=True)
class Column:
    """One series of a target: its exposed name and its own labels (the target adds namespace and pod)."""

    name: str
    labels: Labels = ()


@dataclass(frozen=True)
class Family:
    """One metric family (OpenMetrics ``# TYPE``): its columns are ``start`` to ``stop`` of the schema."""

    name: str
    kind: str  # gauge, counter or histogram
    help: str
    start: int
    stop: int


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]
    families: tuple[Family, ...]
    by_name: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        index: dict[str, list[int]] = {}
        for i, c in enumerate(self.columns):
            index.setdefault(c.name, []).append(i)
        self.by_name.update({k: tuple(v) for k, v in index.items()})

    def __hash__(self) -> int:
        return id(self)


class _Builder:
    def __init__(self) -> None:
        self.columns: list[Column] = []
        self.families: list[Family] = []

    def family(self, name: str, kind: str, help_text: str, columns: list[Column]) -> None:
        start = len(self.columns)
        self.columns += columns
        self.families.append(Family(name, kind, help_text, start, len(self.columns)))

    def schema(self) -> Schema:
        return Schema(tuple(self.columns), tuple(self.families))


@dataclass(frozen=True)
class HistogramFamily:
    name: str
    bounds: tuple[float, ...]
    help: str


def vllm_histograms(max_model_len: int) -> tuple[HistogramFamily, ...]:
    """The per-request histograms the fleet records, in row order. Token histograms use vLLM's 1-2-5
    buckets up to ``max_model_len``."""
    tokens = vllm_token_buckets(max_model_len)
    return (
        HistogramFamily("vllm:time_to_first_token_seconds", VLLM_TTFT_BUCKETS_S, "Time to first token."),
        HistogramFamily(
            "vllm:e2e_request_latency_seconds", VLLM_E2E_BUCKETS_S, "End-to-end request latency."
        ),
        HistogramFamily(
            "vllm:request_prefill_time_seconds", VLLM_E2E_BUCKETS_S, "Time spent in PREFILL phase."
        ),
        HistogramFamily("vllm:inter_token_latency_seconds", VLLM_ITL_BUCKETS_S, "Inter-token latency."),
        HistogramFamily(
            "vllm:request_time_per_output_token_seconds",
            VLLM_ITL_BUCKETS_S,
            "Time per output token of each request (e2e - TTFT over output tokens - 1).",
        ),
        HistogramFamily("vllm:request_prompt_tokens", tokens, "Number of prefill tokens processed."),
        HistogramFamily("vllm:request_generation_tokens", tokens, "Number of generation tokens processed."),
    )


VLLM_GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
)
VLLM_COUNTERS = (
    ("vllm:prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:generation_tokens", "Number of generation tokens processed."),
)


def vllm_schema(model_name: str, max_model_len: int) -> Schema:
    """Row layout of one vLLM pod: gauges, token counters, request_success by finished_reason, each histogram
    (buckets, _sum, _count), then ``up``. ``vllm_row`` fills it in this order."""
    base: Labels = (("model_name", model_name), ("engine", "0"))
    b = _Builder()
    for name, help_text in VLLM_GAUGES:
        b.family(name, "gauge", help_text, [Column(name, base)])
    for name, help_text in VLLM_COUNTERS:
        b.family(name, "counter", help_text, [Column(f"{name}_total", base)])
    reasons = [
        Column("vllm:request_success_total", (*base, ("finished_reason", r))) for r in FINISHED_REASONS
    ]
    b.family("vllm:request_success", "counter", "Count of successfully processed requests.", reasons)
    for h in vllm_histograms(max_model_len):
        les = [le_text(x) for x in h.bounds] + ["+Inf"]
        cols = [Column(f"{h.name}_bucket", (*base, ("le", le))) for le in les]
        cols += [Column(f"{h.name}_sum", base), Column(f"{h.name}_count", base)]
        b.family(h.name, "histogram", h.help, cols)
    b.family("up", "gauge", "1 if the scrape succeeded.", [Column("up")])
    return b.schema()


def vllm_rows(
    gauges: np.ndarray,
    counters: np.ndarray,
    success: np.ndarray,
    histograms: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Rows of ``vllm_schema`` for n pods: gauges [n, 3], counters [n, 2], success [n, 5], and per histogram
    (per-bucket counts [n, buckets + 1], not cumulative; sums [n])."""
    parts = [gauges, counters, success]
    for counts, sums in histograms:
        cumulative = np.cumsum(counts, axis=1)
        parts += [cumulative, sums[:, None], cumulative[:, -1:]]
    parts.append(np.ones((len(gauges), 1)))
    return np.concatenate(parts, axis=1)


TRITON_FIRST_RESPONSE_MS = (100.0, 500.0, 2000.0, 5000.0)  # Triton's default buckets (histogram_latencies)


def triton_schema(model: str) -> Schema:
    """Row layout of one Triton pod (labels model, version; prometheus-cpp keeps counters' plain names, so
    OpenMetrics gets them as ``unknown``): pending requests, inference and success counts, the cumulative
    request duration (the mean latency source when summaries are off, Triton's default), the first-response
    histogram in ms (with ``histogram_latencies=true``), then ``up``. ``triton_rows`` fills it."""
    base: Labels = (("model", model), ("version", "1"))
    b = _Builder()
    b.family(
        "nv_inference_pending_request_count",
        "gauge",
        "Instantaneous number of pending requests awaiting execution per-model.",
        [Column("nv_inference_pending_request_count", base)],
    )
    for name, help_text in (
        ("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
        ("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
        ("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds"),
    ):
        b.family(name, "unknown", help_text, [Column(name, base)])
    name = "nv_inference_first_response_histogram_ms"
    les = [le_text(x) for x in TRITON_FIRST_RESPONSE_MS] + ["+Inf"]
    cols = [Column(f"{name}_bucket", (*base, ("le", le))) for le in les]
    cols += [Column(f"{name}_sum", base), Column(f"{name}_count", base)]
    b.family(name, "histogram", "Duration from request to first response in milliseconds", cols)
    b.family("up", "gauge", "1 if the scrape succeeded.", [Column("up")])
    return b.schema()


def triton_rows(
    pending: np.ndarray, inferences: np.ndarray, success: np.ndarray, duration_us: np.ndarray,
    first_response: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:  # fmt: skip
    """Rows of ``triton_schema`` for n pods (per-bucket counts of the first-response histogram)."""
    counts, sums = first_response
    cumulative = np.cumsum(counts, axis=1)
    cols = [pending[:, None], inferences[:, None], success[:, None], duration_us[:, None]]
    cols += [cumulative, sums[:, None], cumulative[:, -1:], np.ones((len(pending), 1))]
    return np.concatenate(cols, axis=1)


TRT_LLM_TOKEN_BUCKETS = (10.0, 50.0, 100.0, 500.0, 1000.0)  # nv_llm_{input,output}_token_len
TRT_LLM_REQUEST_TYPES = ("active", "max", "scheduled", "context", "waiting")
TRT_LLM_KV_TYPES = ("max", "free", "used", "tokens_per", "reused", "fraction")
TRT_LLM_BATCH_TYPES = ("total_context_tokens", "generation_requests")


def trtllm_schema(model: str) -> Schema:
    """Row layout of one Triton pod serving through the TensorRT-LLM backend (a later release, with
    ``waiting`` and ``fraction``; ../shared/metrics/REFERENCE.md): Triton's own families as
    ``triton_schema`` (the pending count stays 0: requests go to the executor at once), then the executor's
    request types, the KV-cache blocks, the input/output token histograms, the in-flight batcher's
    per-iteration gauges and the iteration counter. ``trtllm_rows`` fills it."""
    base: Labels = (("model", model), ("version", "1"))
    core = triton_schema(model)
    b = _Builder()
    for f in core.families:
        if f.name != "up":
            b.family(f.name, f.kind, f.help, list(core.columns[f.start : f.stop]))
    b.family(
        "nv_trt_llm_request_metrics",
        "gauge",
        "TRT LLM request metrics",
        [Column("nv_trt_llm_request_metrics", (*base, ("request_type", t))) for t in TRT_LLM_REQUEST_TYPES],
    )
    b.family(
        "nv_trt_llm_kv_cache_block_metrics",
        "gauge",
        "TRT LLM KV cache block metrics",
        [
            Column("nv_trt_llm_kv_cache_block_metrics", (*base, ("kv_cache_block_type", t)))
            for t in TRT_LLM_KV_TYPES
        ],
    )
    for name, kind in (
        ("nv_llm_input_token_len", "total_input_tokens"),
        ("nv_llm_output_token_len", "total_output_tokens"),
    ):
        labels = (*base, ("response_metric_type", kind))
        les = [le_text(x) for x in TRT_LLM_TOKEN_BUCKETS] + ["+Inf"]
        cols = [Column(f"{name}_bucket", (*labels, ("le", le))) for le in les]
        cols += [Column(f"{name}_sum", labels), Column(f"{name}_count", labels)]
        b.family(name, "histogram", "TRT LLM response metrics", cols)
    b.family(
        "nv_trt_llm_inflight_batcher_metrics",
        "gauge",
        "TRT LLM inflight_batcher-specific metrics",
        [
            Column("nv_trt_llm_inflight_batcher_metrics", (*base, ("inflight_batcher_specific_metric", t)))
            for t in TRT_LLM_BATCH_TYPES
        ],
    )
    b.family(
        "nv_trt_llm_general_metrics",
        "gauge",
        "General TRT LLM metrics",
        [Column("nv_trt_llm_general_metrics", (*base, ("general_type", "iteration_counter")))],
    )
    b.family("up", "gauge", "1 if the scrape succeeded.", [Column("up")])
    return b.schema()


def trtllm_rows(
    core: np.ndarray,
    requests: np.ndarray,
    kv: np.ndarray,
    tokens: list[tuple[np.ndarray, np.ndarray]],
    batch: np.ndarray,
    iterations: np.ndarray,
) -> np.ndarray:
    """Rows of ``trtllm_schema`` for n pods: ``triton_rows`` without its ``up`` column, request types [n, 5]
    and KV blocks [n, 6] in the schema's order, the input and output token histograms (per-bucket counts,
    sums), the in-flight batcher's gauges [n, 2] and the iteration counter [n, 1]."""
    parts = [core[:, :-1], requests, kv]
    for counts, sums in tokens:
        cumulative = np.cumsum(counts, axis=1)
        parts += [cumulative, sums[:, None], cumulative[:, -1:]]
    parts += [batch, iterations]
    parts.append(np.ones((len(core), 1)))
    return np.concatenate(parts, axis=1)


def dcgm_schema(gpus: int) -> Schema:
    """dcgm-exporter's GPU utilisation for the GPUs of one pod (with ``-k``: namespace, pod, container)."""
    cols = [
        Column(
            DCGM_GPU_UTIL_METRIC,
            (("gpu", str(g)), ("device", f"nvidia{g}"), ("modelName", GPU_MODEL_NAME), ("container", "vllm")),
        )
        for g in range(gpus)
    ]
    b = _Builder()
    b.family(DCGM_GPU_UTIL_METRIC, "gauge", "GPU utilization (in %).", cols)
    return b.schema()


def gateway_schema() -> Schema:
    b = _Builder()
    b.family(
        GATEWAY_METRIC,
        "gauge",
        "Requests held at the gateway while no replica is Ready.",
        [Column(GATEWAY_METRIC)],
    )
    return b.schema()
