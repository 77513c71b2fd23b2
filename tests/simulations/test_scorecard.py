"""The scorecard's trace sets and its table."""

from __future__ import annotations

import pytest

from simulations.scorecard import TRACES, row, selected, table
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
