"""An engine's Prometheus history, built from the capacity model's own law, for the capacity and decision
tests: iterations that follow T = a / (1 - rho) exactly at the load and mix given."""

from __future__ import annotations

import numpy as np

from scaler.core.signals import Measure
from scaler.core.state import Series


def engine_series(
    times_s: tuple[float, ...],
    rho: np.ndarray,
    prompt_tokens: np.ndarray | float,
    output_tokens: np.ndarray | float,
    ready: float,
    costs: tuple[float, float, float],
    min_running_per_replica: float = 0.0,
) -> dict[Measure, Series]:
    """The series of ``ready`` replicas at utilisation ``rho`` with ``costs`` (a, b, c): a request is
    ``c I + b O`` replica-seconds of work, so a replica serves ``rho / (c I + b O)`` requests/s, runs
    ``lam O T`` sequences (Little's law) and iterates in ``T = a / (1 - rho)``."""
    a, b, c = costs
    lam = rho / (c * prompt_tokens + b * output_tokens)  # requests/s a replica
    step = a / (1.0 - rho)
    running = np.maximum(lam * output_tokens * step, min_running_per_replica)
    n = len(times_s)
    return {
        Measure.READY: Series(times_s, (ready,) * n),
        Measure.RUNNING: Series(times_s, tuple(running * ready)),
        Measure.REQUESTS: Series(times_s, tuple(lam * ready)),
        Measure.PROMPT_TOKENS: Series(times_s, tuple(lam * prompt_tokens * ready)),
        Measure.GENERATION_TOKENS: Series(times_s, tuple(lam * output_tokens * ready)),
        Measure.STEP_S: Series(times_s, tuple(step)),
    }
