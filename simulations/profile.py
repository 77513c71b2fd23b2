"""Hardware profiles as data: what one replica of a model costs per iteration, calibrated to published
figures.

The serving model (see ``replica``) is an iteration-level one: each engine iteration takes
``base_s + per_seq_s x (sequences decoding) + prefill_token_s x (prompt tokens in the iteration)``.
Numbers come from ../shared/metrics/CALIBRATION.md; each profile lists every published operating point of
its setup (``Calibration``), fitted or not, and tests/simulations/test_profile.py replays each one
(``calibration``) and checks every figure within 15 %, or, for a figure the model cannot meet, that it
falls on the side its documented exception says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """One published operating point: a closed-loop run at ``concurrency``, or an open-loop one at
    ``arrival_rate_per_s`` (Poisson), with the given request shape (``calibration`` replays both), and the
    figures published for it (p50s). ``fitted``: the profile's parameters were chosen to meet it (the others
    are checked, not fitted). ``exceptions``: figures the model cannot meet, each with the side it falls on
    ("below" or "above" the published value, beyond the tolerance) and why; the test checks that side, so an
    exception that stops being one is noticed."""

    concurrency: int
    input_tokens: int
    output_tokens: int
    tpot_s: float | None = None
    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    e2e_s: float | None = None
    arrival_rate_per_s: float | None = None
    source: str = ""
    fitted: bool = True
    tolerance: float = 0.15
    exceptions: tuple[tuple[str, str, str], ...] = ()  # (figure, "below" | "above", reason)

    def figures(self) -> dict[str, float]:
        """The published figures, keyed as ``calibration.reproduce`` reports them."""
        named = {
            "tpot_p50_s": self.tpot_s,
            "ttft_p50_s": self.ttft_s,
            "e2e_p50_s": self.e2e_s,
            "output_tokens_per_s": self.output_tokens_per_s,
        }
        return {k: v for k, v in named.items() if v is not None}


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
    # Triton only: the backend serving the model. None: a generic one (one item per request, no tokens);
    # "tensorrtllm": TensorRT-LLM's in-flight batching, iteration-level like vLLM, exporting nv_trt_llm_*.
    triton_backend: str | None = None

    @property
    def per_item(self) -> bool:
        """A generic Triton model: one item per request, no prompt or output tokens."""
        return self.backend == "triton" and self.triton_backend is None

    def decode_step_s(self, batch: float) -> float:
        return self.base_s + self.per_seq_s * batch


_CLIENT_GAPS = "a client alone on the server leaves gaps between requests that the model's client does not"
_TTFT_UNDER_LOAD = (
    "under load a new prompt waits for the engine's running iteration to end and for the API server, which "
    "the model (a prompt starts at once, engine time only) does not have: 9 ms more at 4 in flight, 21 at 16"
)
_SATURATED = (
    "past 16 in flight this server saturates (1,384 -> 1,312 tok/s from 16 to 64, TPOT 10.9 -> 46.9 ms); the "
    "linear step model fitted up to 16 keeps scaling"
)


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
        Calibration(
            1,
            200,
            128,
            tpot_s=0.0065,
            ttft_s=0.014,
            output_tokens_per_s=122,
            source="yobitel H100 8B, C=1",
            exceptions=(("output_tokens_per_s", "above", _CLIENT_GAPS),),
        ),
        Calibration(
            4,
            200,
            128,
            tpot_s=0.0066,
            ttft_s=0.023,
            output_tokens_per_s=580,
            source="yobitel H100 8B, C=4",
            exceptions=(("ttft_p50_s", "below", _TTFT_UNDER_LOAD),),
        ),
        Calibration(
            16,
            200,
            128,
            tpot_s=0.0109,
            ttft_s=0.042,
            output_tokens_per_s=1384,
            source="yobitel H100 8B, C=16",
            exceptions=(("ttft_p50_s", "below", _TTFT_UNDER_LOAD),),
        ),
        Calibration(
            64,
            200,
            128,
            tpot_s=0.0469,
            ttft_s=0.087,
            output_tokens_per_s=1312,
            source="yobitel H100 8B, C=64",
            fitted=False,
            exceptions=(
                ("tpot_p50_s", "below", _SATURATED),
                ("ttft_p50_s", "below", _TTFT_UNDER_LOAD),
                ("output_tokens_per_s", "above", _SATURATED),
            ),
        ),
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

# Llama-3.1-70B-Instruct with FP8 weights, tensor-parallel 4x H100 80GB, current vLLM (the default profile).
# Decode is fitted to the vLLM >= 0.6 operating points of ../shared/metrics/CALIBRATION.md section 1 on 4x
# H100: 1a (vLLM 0.6.0, SGLang team's run, ShareGPT, Poisson at 4 and 8 req/s: median TPOT 23.58 and 29.15
# ms) and 1b (LambdaLabs, vLLM 0.6.0 with 10 scheduler steps, 5,000 prompts at rps=inf, max-num-seq 256:
# 3,542.88 tok/s at a median TPOT of 61.10 ms); 1a's offline row (3,700.64 tok/s) is checked, not fitted.
# ShareGPT requests are replayed at their mean shape, 215 in / 198 out (PR 8125 in 3b: 9,233.80 input and
# 8,475.35 output tok/s at 42.91 req/s; 1a's offline row: 3,700.64 / 19.04 = 194 out). Fit: TPOT(B) = 20 ms
# + 0.14 ms x B, plus the prefills mixed in: 22.8 / 28.9 ms at 4 / 8 req/s, 67.9 ms and 3,767 tok/s at 256
# in flight (tests/simulations/test_profile.py reproduces each point within 15 %). 1a runs BF16 weights (no
# quantisation flag) and 1b does not say: at these batch sizes vLLM 0.6's step time is its per-step
# overhead, not the weight reads (70 GB of FP8 over 4 x 3.35 TB/s take 5.2 ms, BF16 10.5 ms, against 23.6 ms
# per token at 4 req/s), so the two precisions decode alike here. What FP8 changes is set from it:
# - prefill 44 us/token: NIM 1.8.0's FP8 TP2 single-request TTFTs (section 4b: 500 -> 47.77 ms, 5,000 ->
#   406.77 ms) give 79.8 us/token on 2 GPUs; on 4, at 90 % tensor-parallel efficiency, 44 us (FP8 tensor
#   cores, twice BF16's rate: the old BF16-era profile used 70 us);
# - KV cache 677k tokens: 0.9 x 79.6 GiB per GPU = 71.6 GiB, less 16.9 GiB of weights (70.6 B parameters at
#   1 byte plus the BF16 embedding and head, 67.7 GiB over 4) and ~3 GiB of activations and CUDA graphs,
#   leaves 51.7 GiB per GPU; a token's BF16 KV (80 layers x 8 KV heads x 128 x 2 x 2 B = 320 KiB) is 80 KiB
#   per GPU: 677k tokens (the old profile's 430k is what BF16 weights leave).
# max_num_seqs 256 as in both runs (vLLM 0.6's default; current vLLM's H100 default is 1024, beyond the range
# the fit covers). Knee: 64 in flight, TPOT 29 ms (1.45 x the one-sequence step), where 1a measured 29 ms at
# 8 req/s (~46 in flight plus queueing).
_SINGLE_STEP = (
    "single-step scheduling in vLLM 0.6 spends CPU time per step that multi-step scheduling (LambdaLabs: "
    "'largely thanks to' it, throughput doubled) and vLLM V1's design remove; the model is a current vLLM"
)
_TRT_STEP = "TensorRT-LLM's engine step is lighter than vLLM's (the model's 20 ms step is vLLM 0.6's)"
_MULTI_STEP_TTFT = (
    "vLLM 0.6 with --num-scheduler-steps 10 schedules a new prompt only between 10-step decode runs; the "
    "model schedules it at once (SGLang, single-step, on the same GPUs and load: 53.94 / 58.11 ms)"
)
_SHAREGPT_MEDIAN = (
    "a median over ShareGPT's output lengths (the published medians imply 117 tokens: (2,915.60 - 179.15) / "
    "23.58 + 1) while the model replays the mean, 198"
)
LLAMA70B_FP8_H100X4 = HardwareProfile(
    name="llama70b-fp8-h100x4",
    backend="vllm",
    gpus_per_replica=4,
    base_s=0.020,
    per_seq_s=0.00014,
    prefill_token_s=44e-6,
    max_num_seqs=256,
    max_num_batched_tokens=8192,
    kv_cache_tokens=677_000,
    target_concurrency=64,
    calibration=(
        Calibration(
            0,
            215,
            198,
            arrival_rate_per_s=4.0,
            tpot_s=0.02358,
            ttft_s=0.17915,
            e2e_s=2.91560,
            source="1a vLLM 0.6.0 70B TP4 H100, ShareGPT at 4 req/s",
            exceptions=(("ttft_p50_s", "below", _MULTI_STEP_TTFT), ("e2e_p50_s", "above", _SHAREGPT_MEDIAN)),
        ),
        Calibration(
            0,
            215,
            198,
            arrival_rate_per_s=8.0,
            tpot_s=0.02915,
            ttft_s=0.20712,
            e2e_s=3.75238,
            source="1a vLLM 0.6.0 70B TP4 H100, ShareGPT at 8 req/s",
            exceptions=(("ttft_p50_s", "below", _MULTI_STEP_TTFT), ("e2e_p50_s", "above", _SHAREGPT_MEDIAN)),
        ),
        Calibration(
            256,
            215,
            198,
            tpot_s=0.06110,
            output_tokens_per_s=3542.88,
            source="1b vLLM 0.6.0 (10 scheduler steps) 70B TP4, 5,000 prompts at rps=inf, max-num-seq 256",
        ),
        Calibration(
            256,
            215,
            198,
            output_tokens_per_s=3700.64,
            source="1a vLLM 0.6.0 70B TP4 H100, 5,000 ShareGPT prompts at rps=inf",
            fitted=False,
        ),
        Calibration(
            256,
            215,
            198,
            tpot_s=0.10299,
            output_tokens_per_s=2291.0,
            source="1b vLLM 0.6.0 (1 scheduler step) 70B TP4, 5,000 prompts at rps=inf, max-num-seq 256",
            fitted=False,
            exceptions=(
                ("tpot_p50_s", "below", _SINGLE_STEP),
                ("output_tokens_per_s", "above", _SINGLE_STEP),
            ),
        ),
        Calibration(
            1,
            128,
            2,
            ttft_s=0.0196,
            source="4a TensorRT-LLM 0.9.0 70B FP8 TP4 H100, batch 1, 128-token prompt",
            fitted=False,
            exceptions=(("ttft_p50_s", "above", _TRT_STEP),),
        ),
    ),
)

# Llama-3.1-70B-Instruct FP8 on Triton with the TensorRT-LLM backend (in-flight batching), tensor-parallel
# 4x H100 80GB: the same iteration model as vLLM's (TRT-LLM's executor schedules per iteration, with chunked
# context up to max_num_tokens). Calibrated to ../shared/metrics/CALIBRATION.md section 2 (TensorRT-LLM's
# own published figures for this setup; the Triton front end adds no per-token cost there):
# - 4a (TRT-LLM v0.9.0 perf overview, "Low Latency" table, H100 FP8 TP4, batch 1, 128 input tokens): first
#   token 19.6 ms. A 128-token pass is mostly the per-iteration cost: base 13 ms (70 GB of FP8 weights over
#   4 x 3.35 TB/s is 5.2 ms; the rest is all-reduce and launch) + 128 x 55 us = 20.0 ms (the model's 5 ms
#   clock gives 22 ms);
# - 2a (TRT-LLM v0.14.0 perf overview, Llama 3.1 70B FP8 TP4, trtllm-bench at infinite rate, fixed ISL/OSL),
#   three rows: 128/2048 -> 9,017.44 output tok/s fixes the decode cost: a saturated replica decodes
#   max_num_seqs sequences, 512 / (13 ms + 512 x b) = 9,017 gives b = 85.6 us per sequence; 2048/128 ->
#   1,001.08 fixes the prompt cost, 55 us per token (512 requests finishing every 128 iterations bring
#   8,192 prompt tokens per iteration; 44 us, vLLM FP8's, gave 1,242 tok/s, 24 % over); 1000/1000 ->
#   6,932.88 is checked, not fitted (the model gives 6,027, 13 % under).
# ESTIMATES, not published: max_num_seqs 512 (trtllm-bench sizes the batch to the engine and the page does
# not print it) and the KV capacity: FP8 KV (80 layers x 8 KV heads x 128 x 2 x 1 B = 160 KiB per token) in
# 0.9 x 80 GB less 17.5 GB of weights and ~3 GB of activations per GPU: 4 x 51.5 GB / 160 KiB = 1.3 M tokens.
# These are offline max-throughput points (CALIBRATION.md caveat 5): upper bounds, not latency-bounded
# operating points. Knee: ~80 in flight, where the step is 1.5x its one-sequence cost.
TRITON_TRTLLM_LLAMA70B_FP8_H100X4 = HardwareProfile(
    name="triton-trtllm-llama70b-fp8-h100x4",
    backend="triton",
    triton_backend="tensorrtllm",
    gpus_per_replica=4,
    base_s=0.013,
    per_seq_s=0.0000856,
    prefill_token_s=55e-6,
    max_num_seqs=512,
    max_num_batched_tokens=8192,  # TensorRT-LLM's default max_num_tokens
    kv_cache_tokens=1_300_000,
    target_concurrency=80,
    calibration=(
        Calibration(1, 128, 2, ttft_s=0.0196, source="TRT-LLM v0.9.0 low latency, H100 FP8 TP4, 128 in"),
        Calibration(
            512, 128, 2048, output_tokens_per_s=9017.44, source="TRT-LLM v0.14.0, 70B FP8 TP4, 128/2048"
        ),
        Calibration(
            512,
            1000,
            1000,
            output_tokens_per_s=6932.88,
            source="TRT-LLM v0.14.0, 70B FP8 TP4, 1000/1000",
            fitted=False,
        ),
        Calibration(
            512,
            2048,
            128,
            output_tokens_per_s=1001.08,
            source="TRT-LLM v0.14.0, 70B FP8 TP4, 2048/128",
        ),
    ),
)

PROFILES: dict[str, HardwareProfile] = {
    p.name: p
    for p in (
        LLAMA70B_FP8_H100X4,
        LLAMA8B_H100,
        LLAMA70B_H100X4,
        TRITON_ENCODER_H100,
        TRITON_TRTLLM_LLAMA70B_FP8_H100X4,
    )
}
DEFAULT_PROFILE = LLAMA70B_FP8_H100X4.name


def profile_named(name: str) -> HardwareProfile:
    """The profile called ``name``; ValueError listing the allowed names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; allowed: {', '.join(sorted(PROFILES))}") from None
