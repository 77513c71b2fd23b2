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

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]: ...
