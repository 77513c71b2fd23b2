"""Hardware profiles as data: what one replica of a model costs per iteration, calibrated to published
figures.

The serving model (see ``replica``) is an iteration-level one: each engine iteration takes
``base_s + per_seq_s x (sequences decoding) + prefill_token_s x (prompt tokens in the iteration)``.
Numbers come from ../shared/metrics/CALIBRATION.md; each profile names the figures it is fitted to, and
tests/simulations/test_profile.py checks the model reproduces them within 15 %.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """One published figure: a closed-loop run at ``concurrency`` with the given request shape."""

    concurrency: int
    input_tokens: int
    output_tokens: int
    tpot_s: float | None = None
    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    source: str = ""


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    backend: str  # "vllm" or "triton"
    gpus_per_replica: int
    base_s: float  # fixed cost of one engine iteration (weights read once per step)
    per_seq_s: float  # extra iteration time per sequence decoding in the batch (KV reads)
    prefill_token_s: float  # iteration time per prompt token prefilled
    max_num_seqs: int  # vLLM --max-num-seqs (Triton: max_batch_size)
    max_num_batched_tokens: int  # vLLM token budget per iteration (chunked prefill)
    kv_cache_tokens: int  # KV-cache capacity of one replica, in tokens
    target_concurrency: int  # in-flight requests per replica at the latency knee (used for targets)
    max_model_len: int = 131_072  # vLLM --max-model-len (sets the token histograms' buckets)
    calibration: tuple[Calibration, ...] = ()
    note: str = ""

    def decode_step_s(self, batch: float) -> float:
        return self.base_s + self.per_seq_s * batch


# Llama-3.1-8B-Instruct FP16 on 1x H100 80GB (vLLM 0.21.0, "chatbot-short"), yobitelcomm concurrency sweep
# (secondary): TPOT p50 6.5 / 6.6 / 10.9 ms at concurrency 1 / 4 / 16, 580 / 1,384 tok/s at 4 / 16, TTFT p50
# 14 ms at 1. Fit: TPOT(B) = 6.2 ms + 0.27 ms x B (B=1: 6.47, B=4: 7.28, B=16: 10.52 ms). Prefill 35 us/token
# (8B x 2 FLOP/token at ~45 % of H100 BF16 peak); a 200-token prompt then takes 6.2 + 7.0 = 13.2 ms.
# The request shape of "chatbot-short" is not published; we assume 200 in / 128 out. Concurrency 1
# throughput (122 tok/s) is not fitted: it includes client gaps the model does not have (it gives ~150).
# KV: 56 GiB free (gateway-api-inference-extension PR #550 log) / 128 KiB per token (32 layers x 8 KV heads
# x 128 x 2 x 2 B) = 460k tokens. max_num_seqs: vLLM's H100 default is 1024; a latency-minded operator
# sets 128 (TPOT 41 ms there, close to the 47 ms measured at 64), which also makes the waiting queue a
# meaningful signal for the queue-based baselines.
LLAMA8B_H100 = HardwareProfile(
    name="llama8b-h100",
    backend="vllm",
    gpus_per_replica=1,
    base_s=0.0062,
    per_seq_s=0.00027,
    prefill_token_s=35e-6,
    max_num_seqs=128,
    max_num_batched_tokens=8192,
    kv_cache_tokens=460_000,
    target_concurrency=16,
    max_model_len=8192,  # as deploy/vllm sets it
    calibration=(
        Calibration(1, 200, 128, tpot_s=0.0065, ttft_s=0.014, source="yobitel H100 8B, C=1"),
        Calibration(4, 200, 128, tpot_s=0.0066, output_tokens_per_s=580, source="yobitel H100 8B, C=4"),
        Calibration(16, 200, 128, tpot_s=0.0109, output_tokens_per_s=1384, source="yobitel H100 8B, C=16"),
    ),
)

# Llama-3.1-70B-Instruct FP8, tensor-parallel 4x H100 (LambdaLabsML/vllm-benchmark, vLLM 0.5.4, 320 prompts
# saturated): 2,243 tok/s at 38 ms ITL. That is ~85 sequences decoding (2,243 x 0.038); fit TPOT(B) =
# 14 ms + 0.28 ms x B (B=85: 37.8 ms, 2,249 tok/s). Prefill 70 us/token (140 GFLOP/token over 4 GPUs at
# ~50 % of peak). KV: ~140 GB free over 4 GPUs / 320 KiB per token (80 layers x 8 x 128 x 2 x 2 B) = 430k.
# Only one operating point is published for this setup, so this calibration is one point, not a curve.
LLAMA70B_H100X4 = HardwareProfile(
    name="llama70b-h100x4",
    backend="vllm",
    gpus_per_replica=4,
    base_s=0.014,
    per_seq_s=0.00028,
    prefill_token_s=70e-6,
    max_num_seqs=128,
    max_num_batched_tokens=8192,
    kv_cache_tokens=430_000,
    target_concurrency=32,
    calibration=(
        Calibration(
            85, 256, 1024, tpot_s=0.038, output_tokens_per_s=2243, source="LambdaLabs 4x H100 70B FP8"
        ),
    ),
)

# A Triton model with dynamic batching (BERT-large-class encoder on 1x H100). Illustrative, NOT calibrated:
# no published figure in CALIBRATION.md. One request = one item; a batch of n takes 4 ms + 0.5 ms x n.
TRITON_ENCODER_H100 = HardwareProfile(
    name="triton-encoder-h100",
    backend="triton",
    gpus_per_replica=1,
    base_s=0.004,
    per_seq_s=0.0,
    prefill_token_s=0.0005,
    max_num_seqs=64,
    max_num_batched_tokens=64,
    kv_cache_tokens=1 << 40,
    target_concurrency=32,
    note="illustrative, not calibrated",
)

PROFILES: dict[str, HardwareProfile] = {
    p.name: p for p in (LLAMA8B_H100, LLAMA70B_H100X4, TRITON_ENCODER_H100)
}
DEFAULT_PROFILE = LLAMA70B_H100X4.name


def profile_named(name: str) -> HardwareProfile:
    """The profile called ``name``; ValueError listing the allowed names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; allowed: {', '.join(sorted(PROFILES))}") from None
