"""Shared pieces for the simulator tests: short real-trace slices and small settings."""

from __future__ import annotations

import pytest

from simulations.policy import SimSettings
from simulations.profile import profile_named
from simulations.trace import Trace, load_trace


@pytest.fixture(scope="session")
def conv() -> Trace:
    return load_trace("azure-conv")


@pytest.fixture(scope="session")
def conv_short(conv: Trace) -> Trace:
    """Ten minutes of the conversation trace (about 3,000 requests)."""
    return conv.slice(1500, 2100)


@pytest.fixture(scope="session")
def sim70() -> SimSettings:  # frozen: safe to share
    return SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=120.0)
