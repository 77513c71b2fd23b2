"""The ``Source`` protocol: what the refresher (and the simulator) read a batch of ScaledObjects through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from scaler.core.state import Observation
from scaler.core.target import Target

# Identity of one trigger: (namespace, ScaledObject, Deployment).
Key = tuple[str, str, str]


class Source(Protocol):
    """Anything that observes a batch of targets: Prometheus (+ Kubernetes) in production, memory in the
    simulator. All or nothing: raise rather than return a partial batch."""

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        """One observation per target it can answer for. A source may return the very same Observation
        object as its last collect for a target only when ``decide`` on it would answer the same but for
        the time (nothing in it ages: no samples, no pods, no history); the refresh then restamps the
        last decision instead of deciding again. A new object is always safe."""
        ...
