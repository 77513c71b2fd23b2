"""The scorecard's trace sets and its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulations.policy import SimSettings
from simulations.profile import profile_named
from simulations.scorecard import TRACES, TraceSpec, row, run_scorecard, seeds_table, selected, table, verdict
from simulations.trace import Trace


def test_tuning_and_held_out_sets_are_disjoint_and_cover_the_same_kinds() -> None:
    tuning, held = selected("tuning"), selected("held-out")
    assert {t.name for t in tuning}.isdisjoint({t.name for t in held})
    assert (
        {t.kind for t in tuning}
        == {t.kind for t in held}
        == {
            "azure-conv",
            "azure-code",
            "diurnal",
            "bursts",
            "idle-gaps",
            "flash-crowd",
        }
    )
    assert len(selected("all")) == len(TRACES) == len(tuning) + len(held)
    for t in tuning:  # the same kind held out under another seed, or another half of the Azure trace
        other = next(h for h in held if h.kind == t.kind)
        assert (t.seed, t.start_s) != (other.seed, other.start_s)
    with pytest.raises(ValueError, match="--set must be one of tuning, held-out, all"):
        selected("everything")


def test_azure_halves_split_the_bundled_trace(conv: Trace) -> None:
    halves = [t.load() for t in TRACES if t.kind == "azure-conv" and t.speedup == 1]
    assert sum(len(h) for h in halves) == len(conv)


def test_a_sped_up_row_is_the_trace_replayed_faster_then_sliced(conv: Trace) -> None:
    """azure-conv x2[0:1800]: the whole hour's requests, each arriving at half its time, in 30 minutes."""
    spec = next(t for t in TRACES if t.name == "azure-conv x2[0:1800]")
    assert spec.set == "held-out"
    fast = spec.load()
    assert len(fast) == len(conv) and fast.span_s == pytest.approx(conv.span_s / 2)
    assert list(fast.input_tokens) == list(conv.input_tokens)
    with pytest.raises(ValueError, match="the speed-up must be a finite number > 0, got 0"):
        conv.sped_up(0)


def test_row_and_table_give_the_gpu_hours_at_the_scalers_attainment() -> None:
    spec = selected("tuning")[0]
    policies = {
        name: {"slo_attainment": 0.99, "gpu_hours": g}
        for name, g in (("scaler", 10.0), ("hindsight", 7.0), ("static-peak", 12.0))
    }
    summary = {
        "requests": 100,
        "oracle_gpu_hours": 5.0,
        "policies": policies,
        "frontier": {
            "hindsight": {"gpu_hours_at_scaler_attainment": 8.0},
            "keda-tuned": {"gpu_hours_at_scaler_attainment": 11.5},
            "kpa": {"gpu_hours_at_scaler_attainment": None},
        },
    }
    r = row(spec, summary)
    assert r["scaler_over_hindsight"] == 1.25  # 10 / 8
    assert r["baselines_gpu_hours_at_scaler_attainment"]["keda-tuned"] == 11.5
    md = table([r])
    line = md.splitlines()[2]
    assert "| 10 | 8 | 1.25 | 5 |" in line
    assert line.count("unreachable") == 1  # kpa; the baselines not swept here show "-"
    assert line.count("| - |") == 3


def _row(name: str, scaler: float, baselines: dict[str, float | None], attainment: float = 0.99) -> dict:
    return {
        "trace": name,
        "set": "tuning",
        "scaler_attainment": attainment,
        "scaler_gpu_hours": scaler,
        "baselines_gpu_hours_at_scaler_attainment": baselines,
    }


@pytest.mark.parametrize(
    ("scaler", "baselines", "expected"),
    [
        # the docstring's worked example: 10 against keda-tuned 11.5 and static 12 -> 10 / 11.5 = 0.87
        (10.0, {"keda-tuned": 11.5, "static-peak": 12.0}, ("win", "keda-tuned", 0.87)),
        # the code trace's held-out half: 6.4433 against the static fleet of 3's 6.4433
        (6.4433, {"static-peak": 6.4433, "kpa": 9.0}, ("tie", "static-peak", 1.0)),
        # the code tuning half at seed 1: 20.03 against the static fleet of 4's 9.2844 -> 2.157
        (20.03, {"static-peak": 9.2844, "kpa": None}, ("loss", "static-peak", 2.157)),
        # no swept setting of any baseline reaches the scaler's attainment
        (5.0, {"kpa": None, "keda-tuned": None}, ("win", None, None)),
    ],
)
def test_verdict_against_the_cheapest_baseline_frontier(
    scaler: float, baselines: dict[str, float | None], expected: tuple
) -> None:
    assert verdict(_row("t", scaler, baselines)) == expected


def test_seeds_table_counts_the_verdicts_per_row_and_takes_the_median_ratio() -> None:
    by_seed = {
        0: [_row("code", 8.0, {"static-peak": 10.0}, 1.0), _row("conv", 2.0, {"kpa": None})],
        1: [_row("code", 12.0, {"static-peak": 10.0}, 0.96812), _row("conv", 2.0, {"kpa": 2.0})],
        2: [_row("code", 11.0, {"static-peak": 10.0}), _row("conv", 1.0, {"kpa": 2.0})],
    }
    lines = seeds_table(by_seed).splitlines()
    code, conv = lines[2], lines[3]
    assert "| 1 @ 8: win vs static-peak 0.8 |" in code
    assert "| 0.96812 @ 12: loss vs static-peak 1.2 |" in code
    assert code.endswith("| 1 / 0 / 2 | 1.1 |")  # ratios 0.8, 1.2, 1.1: median 1.1
    assert "win (no baseline reaches it)" in conv
    assert conv.endswith("| 2 / 1 / 0 | 0.75 |")  # ratios 1.0 and 0.5 (seed 0 has none)
    assert "All rows and seeds: 3 wins, 1 ties, 2 losses." in seeds_table(by_seed)


def test_a_scorecard_at_two_seeds_writes_each_seed_and_the_verdicts(tmp_path: Path) -> None:
    """A short generated trace through the real compare --frontier at seeds 0 and 1 (one process)."""
    spec = TraceSpec("bursts-short", "tuning", "bursts", rate=0.5, duration_s=600.0, seed=3)
    sim = SimSettings(profile=profile_named("llama8b-h100"), cold_start_s=30.0, ttft_slo_s=2.0)
    result = run_scorecard(tmp_path, sim, workers=1, seeds=[0, 1], specs=[spec])
    assert result["seeds"] == [0, 1]
    for seed in (0, 1):
        one = json.loads((tmp_path / f"seed-{seed}" / "scorecard.json").read_text())
        assert one["seed"] == seed
        summary = json.loads((tmp_path / f"seed-{seed}" / "bursts-short" / "summary.json").read_text())
        assert summary["seed"] == seed
        (r,) = one["rows"]
        assert r["scaler_gpu_hours"] == summary["policies"]["scaler"]["gpu_hours"]
        outcome, baseline, ratio = verdict(r)
        assert result["verdicts"][str(seed)]["bursts-short"] == {
            "outcome": outcome,
            "baseline": baseline,
            "ratio": ratio,
        }
    md = (tmp_path / "scorecard.md").read_text()
    assert "at seeds 0, 1" in md and "| bursts-short | tuning |" in md
