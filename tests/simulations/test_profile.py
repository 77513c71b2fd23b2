"""Every published operating point of every profile (CALIBRATION.md) replayed on the model: each figure within
its stated tolerance, or a documented exception whose side (below / above) is checked too."""

from __future__ import annotations

import math

import pytest

from simulations.calibration import reproduce
from simulations.profile import DEFAULT_PROFILE, PROFILES, Calibration, profile_named

CASES = [(p.name, c) for p in PROFILES.values() for c in p.calibration]


@pytest.mark.parametrize(("name", "cal"), CASES, ids=[f"{n}:{c.source}" for n, c in CASES])
def test_every_published_point(name: str, cal: Calibration) -> None:
    # Steps fine enough that a step's rounding is small against the figure (a 13 ms TTFT at C=1).
    dt_s = 0.02 if cal.arrival_rate_per_s else (0.002 if cal.concurrency <= 64 else 0.005)
    got = reproduce(profile_named(name), cal, dt_s=dt_s)
    figures = cal.figures()
    assert figures, "a calibration point publishes at least one figure"
    exceptions = {figure: (side, why) for figure, side, why in cal.exceptions}
    assert set(exceptions) <= set(figures), "an exception names a published figure"
    for key, want in figures.items():
        value = got[key]
        assert math.isfinite(value), key
        ratio = value / want
        if key in exceptions:
            side, why = exceptions[key]
            assert why, f"{key}: an exception says why"
            # Still an exception: outside the tolerance, on the side it says.
            beyond = ratio < 1 - cal.tolerance if side == "below" else ratio > 1 + cal.tolerance
            assert beyond, f"{name} {cal.source} {key}: {value:.4g} vs {want:.4g} is no longer {side}"
        else:
            assert ratio == pytest.approx(1.0, abs=cal.tolerance), f"{name} {cal.source} {key}: {value:.4g}"


def test_every_required_profile_exists_and_is_calibrated() -> None:
    for name in ("llama70b-fp8-h100x4", "llama8b-h100", "llama70b-h100x4"):
        p = profile_named(name)
        assert any(c.fitted for c in p.calibration)
    assert DEFAULT_PROFILE == "llama70b-fp8-h100x4"
    # The current profile is fitted to at least two published operating points of vLLM >= 0.6.
    fitted = [c for c in profile_named(DEFAULT_PROFILE).calibration if c.fitted and "vLLM 0.6" in c.source]
    assert len(fitted) >= 2


def test_unknown_profile_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: llama70b-fp8-h100x4, llama70b-h100x4, llama8b-h100"):
        profile_named("gpt5")
