"""The serving model reproduces the published figures it is calibrated to (CALIBRATION.md) within 15 %."""

from __future__ import annotations

import pytest

from simulations.profile import PROFILES, Calibration, profile_named
from simulations.replica import closed_loop

CASES = [(p.name, c) for p in PROFILES.values() for c in p.calibration]


@pytest.mark.parametrize(("name", "cal"), CASES, ids=[f"{n}-C{c.concurrency}" for n, c in CASES])
def test_model_reproduces_published_figures_within_15_percent(name: str, cal: Calibration) -> None:
    long_run = cal.concurrency > 50
    got = closed_loop(
        profile_named(name),
        cal.concurrency,
        cal.input_tokens,
        cal.output_tokens,
        duration_s=60.0 if long_run else 10.0,
        dt_s=0.005 if long_run else 0.002,
    )
    wanted = {
        "tpot_p50_s": cal.tpot_s,
        "ttft_p50_s": cal.ttft_s,
        "output_tokens_per_s": cal.output_tokens_per_s,
    }
    checked = {k: v for k, v in wanted.items() if v is not None}
    assert checked
    for key, want in checked.items():
        assert got[key] == pytest.approx(want, rel=0.15), f"{name} C={cal.concurrency} {key}: {got[key]}"


def test_every_required_profile_exists_and_is_calibrated() -> None:
    for name in ("llama8b-h100", "llama70b-h100x4"):
        assert profile_named(name).calibration


def test_unknown_profile_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: llama70b-h100x4, llama8b-h100"):
        profile_named("gpt5")
