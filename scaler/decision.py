"""The decision core: ``decide(signals, state, config, now_s) -> Decision``.

Pure: no gRPC, no Prometheus client, no Kubernetes, no clock. The gRPC service, the ``explain`` CLI and
the simulator all call this one function, so they all tell the same story.

Each configured signal yields a ``SignalVerdict``: its measured value and the replicas it alone would ask
for. The decision is the largest of those, raised to a floor when data is missing or latency is close
to its SLO (neither may shrink the fleet). "No decision" is a value (``valid=False``), not an exception.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from scaler.config import ScalerConfig
from scaler.signal import SignalName, Signals
from scaler.state import State

# Below the SLO, latency only guards: while pXX is above this fraction of the SLO, no scale-down.
LATENCY_GUARD_FRACTION = 0.8


class Status(StrEnum):
    OK = "ok"  # measured; desired_replicas is this signal's ask
    MISSING = "missing"  # no data: holds the fleet, never shrinks it
    GUARD = "guard"  # latency under its SLO but close: forbids scale-down
    IDLE = "idle"  # latency well under its SLO: no opinion


class Reason(StrEnum):
    """Why the decision is what it is; one of the signal names, or one of these."""

    HOLD_MISSING = "hold-missing-data"
    LATENCY_GUARD = "latency-guard"
    IDLE = "idle"
    AT_ZERO = "at-zero-no-demand"
    NO_DATA = "no-data"


@dataclass(frozen=True)
class SignalVerdict:
    signal: SignalName
    value: float | None
    target: float
    desired_replicas: int | None
    status: Status
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """The answer for one ScaledObject at ``now_s``."""

    valid: bool
    desired_replicas: int
    active: bool
    reason: str
    signals: tuple[SignalVerdict, ...]
    current_replicas: int | None
    ready_replicas: int | None
    now_s: float
    details: dict[str, Any] = field(default_factory=dict)

    def verdict(self, name: SignalName) -> SignalVerdict | None:
        return next((v for v in self.signals if v.signal == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``explain`` and logs."""
        out = asdict(self)
        out["signals"] = {
            v.signal.value: {
                "value": v.value,
                "target": v.target,
                "desired_replicas": v.desired_replicas,
                "status": v.status.value,
                **({"note": v.note} if v.note else {}),
            }
            for v in self.signals
        }
        return out


def ceil_ratio(total: float, per_replica: float) -> int:
    """Replicas needed to keep ``total`` at ``per_replica`` each.

    A tiny epsilon keeps float noise from adding a replica: 3 x 0.1 = 0.30000000000000004 would
    otherwise ask ceil(3.0000000000000004) = 4 replicas for a target of 0.1.
    """
    return max(0, math.ceil(total / per_replica - 1e-9))


def _ratio_verdict(name: SignalName, value: float | None, target: float, note: str) -> SignalVerdict:
    if value is None:
        return SignalVerdict(name, None, target, None, Status.MISSING, note or "no series")
    return SignalVerdict(name, value, target, ceil_ratio(value, target), Status.OK, note)


def _gpu_verdict(util_percent: float | None, ready: int | None, target: float, note: str) -> SignalVerdict:
    if util_percent is None or not ready:
        why = note or ("no series" if util_percent is None else "no ready replicas")
        return SignalVerdict(SignalName.GPU, util_percent, target, None, Status.MISSING, why)
    # The HPA's own formula: ready=4 at 90 % average against 60 % asks ceil(4 x 90 / 60) = 6.
    return SignalVerdict(
        SignalName.GPU, util_percent, target, ceil_ratio(ready * util_percent, target), Status.OK, note
    )


def _latency_verdict(
    latency_s: float | None, ready: int | None, slo_s: float, note: str, no_traffic: bool
) -> SignalVerdict:
    name = SignalName.LATENCY
    if latency_s is None and no_traffic:
        return SignalVerdict(name, None, slo_s, None, Status.IDLE, note or "no requests in the window")
    if latency_s is None:
        return SignalVerdict(name, None, slo_s, None, Status.MISSING, note or "no series")
    if latency_s > slo_s:
        # Above the SLO, scale in proportion: ready=2 at p99 3 s against 2 s asks ceil(2 x 3 / 2) = 3.
        base = max(ready or 0, 1)
        return SignalVerdict(
            name, latency_s, slo_s, max(base + 1, ceil_ratio(base * latency_s, slo_s)), Status.OK, note
        )
    if latency_s > LATENCY_GUARD_FRACTION * slo_s:
        return SignalVerdict(name, latency_s, slo_s, None, Status.GUARD, note or "within 80 % of the SLO")
    return SignalVerdict(name, latency_s, slo_s, None, Status.IDLE, note)


def evaluate_signals(signals: Signals, config: ScalerConfig) -> tuple[SignalVerdict, ...]:
    """One verdict per configured signal, in a fixed order."""
    verdicts: list[SignalVerdict] = []
    notes = signals.notes
    if config.target_queue_per_replica is not None:
        verdicts.append(
            _ratio_verdict(
                SignalName.QUEUE,
                signals.queue_requests,
                config.target_queue_per_replica,
                notes.get("queue", ""),
            )
        )
    if config.target_tokens_per_s_per_replica is not None:
        verdicts.append(
            _ratio_verdict(
                SignalName.TOKENS,
                signals.tokens_per_s,
                config.target_tokens_per_s_per_replica,
                notes.get("tokens", ""),
            )
        )
    if config.target_gpu_util_percent is not None:
        verdicts.append(
            _gpu_verdict(
                signals.gpu_util_percent,
                signals.ready_replicas,
                config.target_gpu_util_percent,
                notes.get("gpu", ""),
            )
        )
    if config.latency_slo_s is not None:
        verdicts.append(
            _latency_verdict(
                signals.latency_s,
                signals.ready_replicas,
                config.latency_slo_s,
                notes.get("latency", ""),
                SignalName.LATENCY in signals.no_traffic,
            )
        )
    return tuple(verdicts)


def decide(signals: Signals, state: State, config: ScalerConfig, now_s: float) -> Decision:
    """Desired replicas for one ScaledObject from its signals; pure and deterministic."""
    verdicts = evaluate_signals(signals, config)
    current = signals.current_replicas
    asks = [(v.desired_replicas, v.signal.value) for v in verdicts if v.desired_replicas is not None]
    missing = [v.signal.value for v in verdicts if v.status == Status.MISSING]
    guarded = any(v.status == Status.GUARD for v in verdicts)

    def make(valid: bool, desired: int, reason: str) -> Decision:
        return Decision(
            valid=valid,
            desired_replicas=desired,
            active=valid and desired > 0,
            reason=reason,
            signals=verdicts,
            current_replicas=current,
            ready_replicas=signals.ready_replicas,
            now_s=now_s,
            details={"missing": missing} if missing else {},
        )

    if not asks and not guarded:
        if current == 0:
            # No pods, so the backend has nothing to report: that is "no demand seen", not missing data.
            return make(True, 0, Reason.AT_ZERO)
        if missing and len(missing) == len(verdicts):
            return make(False, current or 0, f"{Reason.NO_DATA}: {', '.join(missing)} missing")

    desired, reason = max(asks, key=lambda a: a[0]) if asks else (0, Reason.IDLE.value)
    # Floors: neither missing data, nor unreadable pods, nor latency near its SLO may shrink the fleet.
    floor = current or 0
    if desired < floor:
        if missing or signals.unreadable_pods:
            desired, reason = floor, Reason.HOLD_MISSING.value
        elif guarded:
            desired, reason = floor, Reason.LATENCY_GUARD.value
    return make(True, desired, reason)
