"""Signals: what was measured for one ScaledObject at one moment, the input of ``decide``.

``None`` always means *missing* (no series, stale, or unreadable), never zero: a missing signal can
hold a fleet where it is, it can never shrink it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SignalName(StrEnum):
    """The signals a ScaledObject can set a target on (each yields a verdict in the Decision)."""

    QUEUE = "queue"
    TOKENS = "tokens"
    GPU = "gpu"
    LATENCY = "latency"


class Measure(StrEnum):
    """Per-Deployment quantities kept as history (``State.history``), summed over the Deployment's pods.

    Rates are per second over the source's rate window; gauges are as scraped."""

    QUEUE = "queue"  # requests in flight (vLLM: running + waiting; Triton: its queue)
    TOKENS = "tokens"  # tokens/s (vLLM: prompt + generation; Triton: inferences/s)
    RUNNING = "running"  # requests in the running batch
    WAITING = "waiting"  # requests waiting to be scheduled
    REQUESTS = "requests"  # requests finished per second
    PROMPT_TOKENS = "prompt_tokens"  # prompt tokens prefilled per second
    GENERATION_TOKENS = "generation_tokens"  # output tokens per second
    STEP_S = "step_s"  # mean time between output tokens (one engine iteration), seconds
    READY = "ready"  # Ready (serving) replicas
    REPLICAS = "replicas"  # replicas of the Deployment (Ready or not)
    GATEWAY = "gateway"  # the activationQuery's value (demand waiting in front of the Deployment)


@dataclass(frozen=True)
class Signals:
    """Measured inputs for one ScaledObject.

    ``current_replicas`` counts the Deployment's replicas (its ``spec.replicas`` when known: surge pods of
    a rollout are not capacity); ``ready_replicas`` those that serve (report metrics). Both ``None`` when
    unknown. The engine fields (running, waiting, requests/s, tokens/s, step time) feed the capacity model
    and the demand projection; any of them may be missing.
    """

    current_replicas: int | None
    ready_replicas: int | None
    queue_requests: float | None = None
    tokens_per_s: float | None = None
    gpu_util_percent: float | None = None
    latency_s: float | None = None
    # Engine measurements (vLLM names in comments; Triton maps what it has).
    running_requests: float | None = None  # vllm:num_requests_running
    waiting_requests: float | None = None  # vllm:num_requests_waiting
    requests_per_s: float | None = None  # rate(vllm:request_success_total)
    prompt_tokens_per_s: float | None = None  # rate(vllm:prompt_tokens_total)
    generation_tokens_per_s: float | None = None  # rate(vllm:generation_tokens_total)
    step_s: float | None = None  # mean vllm:inter_token_latency_seconds over the rate window
    # Fraction (0-1) of the KV cache in use, mean over the pods (TensorRT-LLM on Triton): a saturation guard.
    kv_cache_fraction: float | None = None
    # Fraction of the requests in the rate window whose latency (the configured metric) met the SLO, and
    # how many requests that fraction is over; from the latency histogram.
    latency_attainment: float | None = None
    latency_requests: float | None = None
    # Human-readable qualifiers per signal, e.g. {"latency": "mean, no summary"}; shown in explain.
    notes: dict[str, str] = field(default_factory=dict)
    # How the numbers were read (the backend shape and why, each signal's source metric), shown in explain
    # as they are: {"shape": "Triton TensorRT-LLM ...", "source:queue": "nv_trt_llm_request_metrics ..."}.
    source_notes: dict[str, str] = field(default_factory=dict)
    # Pods that exist but whose metrics could not be read (scrape failing): totals are lower bounds.
    unreadable_pods: int = 0
    # Signals whose series exist but saw no events in the window (latency with no requests): these have
    # no opinion, which is different from missing.
    no_traffic: frozenset[SignalName] = frozenset()
    # Signals whose series have been absent for longer than the staleness bound while the pods are there
    # (dcgm-exporter without pod mapping, say): a configuration problem, not a gap. While another signal
    # is measured they hold nothing (see decide); alone they stay missing.
    unconfigured: frozenset[SignalName] = frozenset()

    def value_of(self, name: SignalName) -> float | None:
        return {
            SignalName.QUEUE: self.queue_requests,
            SignalName.TOKENS: self.tokens_per_s,
            SignalName.GPU: self.gpu_util_percent,
            SignalName.LATENCY: self.latency_s,
        }[name]
