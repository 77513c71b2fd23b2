"""The OpenMetrics export uses the scaler's and the fleet's real metric names and is accepted by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

from simulations.engine import simulate
from simulations.openmetrics import write_openmetrics
from simulations.policies import make_policy
from simulations.policy import SimSettings
from simulations.profile import profile_named
from simulations.trace import load_trace
from tests.harness.prometheus import require_binary


def _promtool() -> str:
    return require_binary("promtool", "the OpenMetrics export is checked with it (Debian: prometheus)")


def test_export_is_accepted_by_promtool(tmp_path: Path) -> None:
    promtool = _promtool()
    trace = load_trace("azure-code").slice(0, 300)
    sim = SimSettings(profile=profile_named("llama8b-h100"), tail_s=30.0)
    runs = {
        name: simulate(trace, make_policy(name, sim, trace), sim, keep_scrapes=True)
        for name in ("scaler", "hpa-gpu")
    }
    om = tmp_path / "run.om"
    n = write_openmetrics(runs, om)
    text = om.read_text()
    assert n > 100 and text.endswith("# EOF\n")
    for name in (
        "llm_scaler_desired_replicas",
        "llm_scaler_current_replicas",
        "llm_scaler_ready_replicas",
        'llm_scaler_signal_value{namespace="sim-scaler",scaledobject="llm",deployment="llm",signal="latency"}',
        "llm_scaler_signal_desired_replicas",
        "llm_scaler_active",
        "llm_scaler_warming_replicas",
        "llm_scaler_cold_start_seconds",
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
        'vllm:time_to_first_token_seconds_bucket{namespace="sim-scaler"',
        "vllm:time_to_first_token_seconds_sum",
        "vllm:e2e_request_latency_seconds_count",
        'DCGM_FI_DEV_GPU_UTIL{namespace="sim-hpa-gpu",pod="llm-',
        # Everything vLLM exports that the simulated pods model, with vLLM's labels and bucket text.
        'vllm:num_requests_running{namespace="sim-scaler",pod="llm-5f7b8c9d4-b',
        'model_name="llama8b-h100",engine="0"}',
        "vllm:kv_cache_usage_perc",
        'vllm:request_success_total{namespace="sim-scaler"',
        'finished_reason="stop"}',
        'vllm:request_prefill_time_seconds_bucket{namespace="sim-scaler"',
        'vllm:inter_token_latency_seconds_bucket{namespace="sim-scaler"',
        'le="0.025"}',
        "vllm:request_time_per_output_token_seconds_count",
        'vllm:request_prompt_tokens_bucket{namespace="sim-scaler"',
        'le="5000.0"}',
        "vllm:request_generation_tokens_sum",
        'up{namespace="sim-scaler",pod="llm-',
        'gateway_pending_requests{namespace="sim-scaler"',
        "# TYPE vllm:request_success counter",
    ):
        assert name in text, name
    proc = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp_path / "tsdb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any((tmp_path / "tsdb").iterdir())
