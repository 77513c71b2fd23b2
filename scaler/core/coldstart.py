"""Cold start: how long a new replica of this Deployment takes from pod creation to Ready.

Learned from the Deployment's own recent pods (Kubernetes API or kube-state-metrics), falling back to the
``coldStartSeconds`` prior. Pure: samples in, an estimate out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# With fewer samples than this the p90 is a guess; blend in the prior instead.
MIN_SAMPLES = 3
QUANTILE = 0.9
# Only the newest pods count: an image or model change makes old starts irrelevant.
MAX_SAMPLES = 20


@dataclass(frozen=True)
class ColdStart:
    seconds: float
    samples: int
    source: str  # "learned" or "prior"
    samples_s: tuple[float, ...] = ()  # the start-ups it was learned from (explain shows them)


def estimate_cold_start(samples_s: Sequence[float], prior_s: float) -> ColdStart:
    """A robust cold-start estimate: the p90 of the recent starts, or the prior with too few of them.

    p90 rather than the mean because the cost is asymmetric: planning for a start that is too short
    misses the SLO for the whole overrun, planning for one too long only buys a replica a little early.
    Worked example: starts of 40, 42, 45, 50 and 120 s (one node pulled the image) give p90 = 92 s;
    the mean, 59 s, would be late two times in ten.
    """
    usable = [s for s in samples_s if s > 0 and s == s and s != float("inf")][-MAX_SAMPLES:]
    if len(usable) < MIN_SAMPLES:
        if usable:
            # One or two observations: trust neither them nor the prior alone; take the larger.
            return ColdStart(max(prior_s, *usable), len(usable), "prior", tuple(usable))
        return ColdStart(prior_s, 0, "prior")
    return ColdStart(float(np.quantile(np.asarray(usable), QUANTILE)), len(usable), "learned", tuple(usable))
