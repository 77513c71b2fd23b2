"""Validated Targets by the exact ScaledObjectRef KEDA sends, so validation runs once, not on every RPC.

KEDA sends the same namespace, name and metadata map on every GetMetrics and IsActive of a trigger.
Validating it (pydantic, the RFC 1123 and URL checks, the activationQuery lexer) took ~13 us, twice per
poll. The key is the whole ref serialized deterministically (protobuf then sorts the map by key: a Go
client's map order varies from call to call, its content does not), 1.3 us against 3.8 us for a
frozenset of the map's items. Changed metadata is a new key, validated afresh, and can never be served
the old Target.
"""

from __future__ import annotations

from scaler._generated import externalscaler_pb2 as pb
from scaler.core.promql import NAMESPACE_LABELS
from scaler.core.target import Target, target_from_ref

# 2,000 ScaledObjects is the load `make bench` measures; eight times that bounds the memory a client
# sending ever-new valid maps can pin (about 2 KiB each: 32 MiB) without evicting a real fleet's.
MAX_TARGETS = 16_384


class TargetCache:
    """``get(ref)`` is ``target_from_ref`` of the ref's namespace, name and metadata, remembered for valid
    refs (``namespace_labels``: the labels that may pin an activationQuery to the namespace; fixed for
    the cache's life, so they need not be part of the key).

    Bad metadata is not kept: it raises ConfigError afresh on each call (a new exception each time, so
    no traceback grows across calls, and no map a client invents fills the cache). At most
    ``max_targets`` are kept; the oldest is dropped first."""

    def __init__(
        self, namespace_labels: tuple[str, ...] = NAMESPACE_LABELS, max_targets: int = MAX_TARGETS
    ) -> None:
        self.namespace_labels = namespace_labels
        self.max_targets = max_targets
        self._targets: dict[bytes, Target] = {}

    def get(self, ref: pb.ScaledObjectRef) -> Target:
        key = ref.SerializeToString(deterministic=True)
        target = self._targets.get(key)
        if target is None:
            target = target_from_ref(ref.namespace, ref.name, dict(ref.scalerMetadata), self.namespace_labels)
            if len(self._targets) >= self.max_targets:
                del self._targets[next(iter(self._targets))]
            self._targets[key] = target
        return target

    def __len__(self) -> int:
        return len(self._targets)
