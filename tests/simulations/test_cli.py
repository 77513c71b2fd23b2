"""The command line: bad input is one line and a non-zero exit; ``compare`` writes a valid summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.__main__ import main
from simulations.policy import POLICIES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compare", "--trace", "nope.csv", "--out", "x"], "is not a file"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--profile", "gpt"], "unknown profile"),
        (
            ["compare", "--trace", "azure-conv", "--out", "x", "--cold-start-s", "-1"],
            "--cold-start-s must be",
        ),
        (["compare", "--trace", "azure-conv", "--out", "x", "--ttft-slo-s", "nan"], "--ttft-slo-s must be"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--seed", "x"], "--seed must be"),
        (
            ["compare", "--trace", "azure-conv", "--out", "x", "--ttft-slo-per-1k-prompt-s", "-1"],
            "--ttft-slo-per-1k-prompt-s must be",
        ),
        (["compare", "--trace", "azure-conv", "--out", "x", "--warmup-s", "soon"], "--warmup-s must be"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--policies", "magic"], "unknown policy"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--set", "kpa.nope=1"], "unknown setting"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--metadata", "backend=tpu"], "backend"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--slice", "abc"], "--slice must be"),
        (
            ["compare", "--trace", "azure-conv", "--out", "x", "--speedup", "0"],
            "--speedup must be a finite number > 0",
        ),
        (
            ["run", "--policy", "kpa", "--trace", "azure-conv", "--out", "x", "--speedup", "fast"],
            "--speedup must be",
        ),
        (["run", "--policy", "nope", "--trace", "azure-conv", "--out", "x"], "unknown policy"),
        (
            ["run", "--policy", "kpa", "--trace", "azure-conv", "--out", "x", "--metadata", "a=b"],
            "scaler policy",
        ),
        (["frobnicate"], "invalid choice"),
        (["compare", "--out", "x"], "--trace"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--frontier", "--policies", "kpa"], "--frontier"),
        (["compare", "--trace", "azure-conv", "--out", "x", "--workers", "0"], "--workers"),
        (["scorecard", "--out", "x", "--set", "everything"], "--set"),
        (
            ["scorecard", "--out", "x", "--seeds", "1"],
            "--seeds must be a comma-separated list of at least two",
        ),
        (["scorecard", "--out", "x", "--seeds", "0,0"], "--seeds must be"),
        (["scorecard", "--out", "x", "--seeds", "0,-1"], "--seeds must be"),
        (["scorecard", "--out", "x", "--seeds", "0,one"], "--seeds must be"),
        (["scorecard", "--out", "x", "--seed", "1", "--seeds", "0,1"], "not allowed with argument --seed"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main([a if a != "x" else str(tmp_path / "o") for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "o").exists()


def test_compare_end_to_end_on_a_short_slice(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulations",
            "compare",
            "--trace",
            "azure-code",
            "--slice",
            "0:420",
            "--out",
            str(out),
            "--profile",
            "llama8b-h100",
            "--cold-start-s",
            "30",
            "--ttft-slo-s",
            "2",
            "--seed",
            "1",
            "--warmup-s",
            "120",
            "--ttft-slo-per-1k-prompt-s",
            "0.5",
            "--frontier",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[" in proc.stderr and "%" in proc.stderr  # the progress bar
    s = json.loads((out / "summary.json").read_text())
    assert s["requests"] > 100 and s["trace"].startswith("azure_llm_2023_code")
    assert s["oracle_gpu_hours"] > 0
    assert (s["warmup_s"], s["ttft_slo_s"], s["ttft_slo_per_1k_prompt_s"]) == (120.0, 2.0, 0.5)
    assert set(s["policies"]) == set(POLICIES)
    for row in s["policies"].values():
        assert set(row) >= {
            "slo_attainment",
            "ttft_p99_s",
            "e2e_p99_s",
            "tpot_p99_s",
            "gpu_hours",
            "cold_starts",
            "max_replicas",
            "dropped",
        }
        assert 0 <= row["slo_attainment"] <= 1 and row["gpu_hours"] >= row["bound_gpu_hours"]
    # --frontier: each baseline's swept points and the GPU-hours it needs at the scaler's attainment.
    fr = s["frontier"]
    target = s["policies"]["scaler"]["slo_attainment"]
    assert set(fr) == {"hindsight", "keda-queue", "keda-tuned", "hpa-gpu", "kpa", "static-peak"}
    for name in ("hindsight", "keda-queue", "keda-tuned", "hpa-gpu", "kpa", "static-peak"):
        at, points = fr[name]["gpu_hours_at_scaler_attainment"], fr[name]["points"]
        assert len(points) >= 1 and all(len(p) == 3 for p in points), name
        # hindsight may use the static fleet where that is cheaper
        pool = points + (fr["static-peak"]["points"] if name == "hindsight" else [])
        reached = [g for a, g, _ in pool if a >= target]
        assert at == (min(reached) if reached else None), name
    # The static fleet's size is found exactly: one replica fewer than the best misses the attainment.
    swept = {int(p[2].removeprefix("replicas=")): p[0] for p in fr["static-peak"]["points"]}
    best = int(fr["static-peak"]["setting_at_scaler_attainment"].removeprefix("replicas="))
    assert swept[best] >= target
    assert best == 1 or swept[best - 1] < target
    md = (out / "summary.md").read_text()
    assert all(f"| {p} |" in md for p in POLICIES)
    assert "Frontier" in md
    for png in ("replicas.png", "latency.png", "frontier.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_generator_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.csv"
    assert main(["trace", "--kind", "poisson", "--rate", "1", "--duration-s", "120", "--out", str(out)]) == 0
    assert out.read_text().startswith("arrival_s,input_tokens,output_tokens\n")


def test_run_without_matplotlib_writes_the_json_and_says_how_to_get_plots(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # matplotlib made unimportable, as in an install without the sim extra
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from simulations.__main__ import main; sys.exit(main())"
    )
    argv = ["--policy", "kpa", "--trace", "azure-code", "--slice", "0:300", "--profile", "llama8b-h100"]
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", *argv, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "pip install 'llm-keda-scaler[sim]'" in proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["policies"]["kpa"]["gpu_hours"] > 0 and s["oracle_gpu_hours"] > 0
    assert not list(out.glob("*.png"))
