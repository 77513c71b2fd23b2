"""The decision core: ``decide(signals, state, config, now_s) -> Decision``.

Pure: no gRPC, no Prometheus client, no Kubernetes, no clock. The gRPC service, the ``explain`` CLI and the
simulator all call this one function, so they all tell the same story.

In order:
1. **Phase**: at zero (no pod), starting (pods exist, none Ready: the first step loads), warming (some
   Ready, some loading from a recent scale-up), serving.
2. **Asks**: the projection (demand as work over the reaction horizon, divided by what one replica serves
   within the SLO: ``capacity``, ``projection``), and each signal that has a target (``targetQueuePerReplica``
   and the others are optional guards; ``latencySloSeconds`` asks for more when the SLO is missed now).
3. **Floors**, each a value with its reason: the headroom bursts need (``headroom``, priced against the
   attainment target), and four that only stop a scale-down: missing data, latency near its SLO, pods still
   loading from a scale-up, and the keep-warm economics of each replica level (``keepwarm``).
4. **Activity**: the last replica goes (inactive) only when the keep-warm economics, the headroom budget
   and ``scaleToZero``/``minIdleSeconds`` all allow it.

"No decision" is a value (``valid=False``: KEDA's fallback), not an exception. Every number that made the
answer is a typed field of the Decision, so explain, the metrics, the logs and the simulator read fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from scaler.core.bursts import BurstCap, short_burst_cap
from scaler.core.capacity import Capacity, CapacitySource, estimate_capacity
from scaler.core.coldstart import ColdStart, estimate_cold_start
from scaler.core.config import ScalerConfig
from scaler.core.headroom import AGE_SCALE_S, Headroom, WindowLoad, attainment_at, headroom_floor
from scaler.core.keepwarm import keep_warm_floor, level_idle
from scaler.core.projection import (
    CONTROL_DELAY_S,
    Projection,
    ceil_replicas,
    project,
    reactive_needs,
)
from scaler.core.signals import Measure, SignalName, Signals
from scaler.core.state import ReplicaSource, Series, State

# Below the SLO, latency only guards: while pXX is above this fraction of the SLO, no scale-down.
LATENCY_GUARD_FRACTION = 0.8
# Above the SLO, latency may at most double the ready replicas per decision: a tail latency is a lagging,
# windowed signal, and queueing delay is not proportional to 1 / replicas.
LATENCY_MAX_STEP = 2.0
# Latency attainment from fewer requests than this is noise (one slow request of ten is 90 %).
MIN_ATTAINMENT_REQUESTS = 20.0
# A fleet whose KV cache is at least this full (mean over its pods; TensorRT-LLM exports it) is saturated:
# whatever the other signals say, it is not scaled down (new requests would wait for blocks, or preempt).
KV_CACHE_FULL_FRACTION = 0.9
# A window whose replicas ran above this utilisation was saturated: its latency is backlog.
SATURATED_UTILISATION = 0.95
# A projection at most this far above the Ready fleet is a rounding while latency has room: the tail
# under ROOM_FRACTION of the SLO and the target met. At half the SLO, one replica on the Azure conversation
# trace (p99 0.64 s of 1 s, every request in time) still started a second for a projection of 1.003, twice
# in 30 minutes: 2.50 GPU-h against the static fleet's 2.33. At 0.8, none (held-out half and the flash crowds
# too: 2.22 and 10.2 GPU-h, where static-peak needs 2.22 and 10.33); the code trace's bursts, whose p99 is
# over the SLO, still scale up. At 0.95, a burst on one replica whose p99 reached 0.89 s of 1 s at a
# projection of 1.02-1.09 (bursts-s1) no longer starts a second that is Ready after it: 2.50 -> 2.42 GPU-h
# at the same attainment; no other scorecard trace moved. The band is half a replica, not a quarter: on
# flash-crowd-s1 one Ready replica at p99 0.46 s of 1 s started a second at a projection of 1.2513 (4.19
# requests/s forecast over 3.37 demonstrated), twice, where one replica served every crowd in time: 10.46
# -> 10.08 GPU-h at 1.0 (static fleet 10.33); held out, flash-crowd-s2 10.22 -> 10.08 and seed 3 10.38 ->
# 10.08; bursts-s3/s4 and diurnal-s3 unchanged, and no other scorecard trace moved.
MARGINAL_REPLICAS = 0.5
# While the learned capacity rests on few busy steps, a scale-down loads each replica left at most this much
# beyond what a past minute showed one replica serves within the SLO (``Capacity.demonstrated_per_s``).
# When the prior gives way to the first learned fit, the estimate can double in one step, and every level
# of the fleet's need history is recomputed at it: on the conversation trace at 6x ([0, 600) s, seed 3), at
# 150 s the estimate went from 4.5 to 9.2 requests/s a replica and 7 replicas went to 4 at 31.4
# requests/s, where a minute had shown 4.87 per replica; the load doubled, the backlog held 21 replicas
# after it (0.919 @ 15.08 GPU-h). At most 31.4 / (1.25 x 4.87) = 5.2, so 6: 1.0 @ 5.22. Applied to every
# scale-down it slowed the descents of dense traces and lost on a held-aside set (stop 30); on a thin fit
# only, it stops acting once the fit has THIN_FIT_SAMPLES steps or a minute has shown the load.
DEMONSTRATED_STEP = 1.25
# 16 busy steps of 15 s: four minutes of load the learned costs rest on.
THIN_FIT_SAMPLES = 16
ROOM_FRACTION = 0.95
# Pods loading for longer than this many cold starts are stuck (unschedulable, crash-looping): they no
# longer hold the fleet or count as capacity coming.
STUCK_COLD_STARTS = 2.0
# Demand history shorter than this many cold starts cannot price the release of the last replica (the
# headroom floor keeps one): see _too_little_history.
MIN_HISTORY_COLD_STARTS = 10.0
# Silence this many times the longest lull between requests in the history ends the headroom for bursts
# (_silenced). Lulls lengthen over an hour of the code trace (143 s in its first ten minutes, 173 s and
# 217 s later), so at 1x each new longest lull released the floor the burst after it needed ([0:1800],
# seed 0: 0.968 -> 0.852 attainment); at 2x none of its lulls does. A lull shorter than the 1 m rate's
# window never shows in its history, so the longest is at least the window: at 3x the code trace's
# lulls of 30-60 s did not show, its 72 s one released 11 replicas after 66 s, and the burst after it
# came back to 1 (0.988 -> 0.959). The conversation trace, whose lulls are seconds, lets the floor go
# 2 minutes after its last request.
LULL_FACTOR = 2.0


class Phase(StrEnum):
    AT_ZERO = "at-zero"  # no pod exists
    STARTING = "starting"  # pods exist and none is Ready: the first step is loading
    WARMING = "warming"  # some Ready, some still loading from a recent scale-up
    SERVING = "serving"


class Status(StrEnum):
    OK = "ok"  # measured; desired_replicas is this signal's ask
    MISSING = "missing"  # no data: holds the fleet, never shrinks it
    GUARD = "guard"  # latency under its SLO but close: forbids scale-down
    IDLE = "idle"  # latency well under its SLO: no opinion
    # absent longer than the staleness bound while other signals are measured: a configuration problem,
    # reported, and it holds nothing
    UNCONFIGURED = "unconfigured"


class Reason(StrEnum):
    """Why the decision is what it is."""

    DEMAND = "demand"  # the projection's ask
    QUEUE = "queue"  # a signal's target asked for the most
    TOKENS = "tokens"
    GPU = "gpu"
    LATENCY = "latency"
    HEADROOM = "headroom"  # warm replicas for bursts shorter than the reaction horizon
    # an ask held back: the levels above were only ever reached in bursts over before a replica is Ready
    SHORT_BURST = "short-burst"
    KEEP_WARM = "keep-warm"  # a scale-down (or the release of the last replica) does not pay yet
    HOLD_MISSING = "hold-missing-data"
    LATENCY_GUARD = "latency-guard"
    KV_CACHE = "kv-cache"  # the KV cache is nearly full: no scale-down
    DEMONSTRATED = "demonstrated"  # no scale-down onto a load per replica far beyond any minute's shown
    LOADING = "loading"  # pods of a recent scale-up still loading: no scale-down on top of it
    FROM_ZERO = "from-zero"  # demand at zero (or while the first step loads): the right-sized first step
    AT_ZERO = "at-zero-no-demand"
    RELEASE = "idle-release"  # idle long enough that a cold start is cheaper than idling: go to zero
    NO_DATA = "no-data"


class FloorKind(StrEnum):
    HEADROOM = "headroom"
    MISSING_DATA = "missing-data"
    LATENCY_GUARD = "latency-guard"
    LOADING = "loading"
    KEEP_WARM = "keep-warm"
    KV_CACHE = "kv-cache"
    DEMONSTRATED = "demonstrated"


@dataclass(frozen=True)
class Floor:
    """The lowest the answer may be, and why. Every floor is reported, whether it won or not."""

    kind: FloorKind
    replicas: int
    why: str


@dataclass(frozen=True)
class SignalVerdict:
    signal: SignalName
    value: float | None
    target: float
    desired_replicas: int | None
    status: Status
    note: str = ""
    # The ask from the measured value alone (desired_replicas may be held below it while replicas load).
    now_replicas: int | None = None


@dataclass(frozen=True)
class Idle:
    """The keep-warm verdict on the last replica (present when the fleet has no demand)."""

    idle_s: float | None
    expected_idle_s: float | None
    penalty_s: float
    release: bool
    why: str


@dataclass(frozen=True)
class Decision:
    """The answer for one ScaledObject at ``now_s``, with every number that made it."""

    valid: bool
    desired_replicas: int
    active: bool
    reason: Reason
    phase: Phase
    signals: tuple[SignalVerdict, ...]
    current_replicas: int | None
    ready_replicas: int | None
    now_s: float
    cold_start: ColdStart
    warming_replicas: int | None
    replica_source: ReplicaSource
    capacity: Capacity | None = None
    projection: Projection | None = None
    headroom: Headroom | None = None
    burst: BurstCap | None = None
    floors: tuple[Floor, ...] = ()
    idle: Idle | None = None
    reason_note: str = ""  # e.g. which signals are missing
    notes: tuple[tuple[str, str], ...] = field(default=())

    def verdict(self, name: SignalName) -> SignalVerdict | None:
        return next((v for v in self.signals if v.signal == name), None)

    def floor(self, kind: FloorKind) -> Floor | None:
        return next((f for f in self.floors if f.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``explain -o json`` and the simulator's decision log."""
        details: dict[str, Any] = {
            "cold_start_s": self.cold_start.seconds,
            "cold_start_samples": self.cold_start.samples,
            "cold_start_source": self.cold_start.source,
            "cold_start_samples_s": list(self.cold_start.samples_s),
            "warming_replicas": self.warming_replicas,
            "replica_source": self.replica_source.value,
        }
        missing = [v.signal.value for v in self.signals if v.status == Status.MISSING]
        if missing:
            details["missing"] = missing
        unconfigured = [v.signal.value for v in self.signals if v.status == Status.UNCONFIGURED]
        if unconfigured:
            details["unconfigured"] = unconfigured
        if self.notes:
            details["notes"] = dict(self.notes)
        if self.idle is not None:
            details["idle"] = {
                "idle_s": self.idle.idle_s,
                "expected_idle_s": self.idle.expected_idle_s,
                "penalty_s": self.idle.penalty_s,
                "release": self.idle.release,
                "why": self.idle.why,
            }
        out: dict[str, Any] = {
            "valid": self.valid,
            "desired_replicas": self.desired_replicas,
            "active": self.active,
            "reason": self.reason.value,
            "reason_note": self.reason_note,
            "phase": self.phase.value,
            "current_replicas": self.current_replicas,
            "ready_replicas": self.ready_replicas,
            "now_s": self.now_s,
            "signals": {
                v.signal.value: {
                    "value": v.value,
                    "target": v.target,
                    "desired_replicas": v.desired_replicas,
                    "status": v.status.value,
                    **({"note": v.note} if v.note else {}),
                }
                for v in self.signals
            },
            "details": details,
            "floors": [{"kind": f.kind.value, "replicas": f.replicas, "why": f.why} for f in self.floors],
        }
        if self.capacity is not None:
            c = self.capacity
            out["capacity"] = {
                "requests_per_s_per_replica": c.requests_per_s_per_replica,
                "work_s_per_request": c.work_s_per_request,
                "utilisation_target": c.utilisation_target,
                "prompt_tokens_per_request": c.prompt_tokens_per_request,
                "output_tokens_per_request": c.output_tokens_per_request,
                "mix": "measured" if c.mix_measured else "prior",
                "step_base_s": c.cost.step_base_s,
                "decode_s_per_token": c.cost.decode_s_per_token,
                "prefill_s_per_token": c.cost.prefill_s_per_token,
                "source": c.cost.source.value,
                "learned_from_s": c.cost.busy_s,
                "demonstrated_per_s": c.demonstrated_per_s,
                "demonstrated_on_replicas": c.demonstrated_on,
                "batch_limit": c.batch_limit,
                "batch_requests_per_s": c.batch_requests_per_s,
                **({"note": c.note} if c.note else {}),
            }
        if self.projection is not None:
            p = self.projection
            out["projection"] = {
                "horizon_s": p.horizon_s,
                "arrivals_per_s": p.arrivals_per_s,
                "forecast_per_s": p.forecast_per_s,
                "backlog_requests": p.backlog_requests,
                "replicas": p.replicas,
                "source": p.source,
            }
        if self.burst is not None:
            out["burst"] = asdict(self.burst)  # its fields are all plain values
        if self.headroom is not None:
            h = self.headroom
            out["headroom"] = {
                "replicas": h.replicas,
                "target_attainment": h.target_attainment,
                "requests": h.requests,
                "misses_reactive": h.misses_reactive,
                "misses_at_floor": h.misses_at_floor,
                "windows": h.windows,
                "why": h.why,
            }
        return out


def ceil_ratio(total: float, per_replica: float) -> int:
    """Replicas needed to keep ``total`` at ``per_replica`` each.

    A tiny epsilon keeps float noise from adding a replica: 3 x 0.1 = 0.30000000000000004 would
    otherwise ask ceil(3.0000000000000004) = 4 replicas for a target of 0.1.
    """
    return max(0, math.ceil(total / per_replica - 1e-9))


# -- signal verdicts ----------------------------------------------------------------------------------------
def _ratio_verdict(name: SignalName, value: float | None, target: float, note: str) -> SignalVerdict:
    if value is None:
        return SignalVerdict(name, None, target, None, Status.MISSING, note or "no series")
    ask = ceil_ratio(value, target)
    return SignalVerdict(name, value, target, ask, Status.OK, note, now_replicas=ask)


def _gpu_verdict(util_percent: float | None, ready: int | None, target: float, note: str) -> SignalVerdict:
    if util_percent is None or not ready:
        why = note or ("no series" if util_percent is None else "no ready replicas")
        return SignalVerdict(SignalName.GPU, util_percent, target, None, Status.MISSING, why)
    # The HPA's own formula: ready=4 at 90 % average against 60 % asks ceil(4 x 90 / 60) = 6.
    ask = ceil_ratio(ready * util_percent, target)
    return SignalVerdict(SignalName.GPU, util_percent, target, ask, Status.OK, note, now_replicas=ask)


def _latency_verdict(signals: Signals, config: ScalerConfig) -> SignalVerdict:
    """Latency against its SLO.

    With the histogram's attainment (the fraction of the window's requests within the SLO) below the
    target, ask for the replicas that would have served the target fraction if queueing drains in
    proportion to replicas: 6 Ready at 80 % of 500 requests within the SLO, target 99 %, ask
    ceil(6 x 0.99 / 0.80) = 8 (at most double). Without a histogram (a summary or a mean), the same in
    proportion to the latency: 2 Ready at p99 3 s against 2 s ask ceil(2 x 3 / 2) = 3.
    """
    name, slo_s = SignalName.LATENCY, config.latency_slo_s
    assert slo_s is not None
    note = signals.notes.get("latency", "")
    value, attained = signals.latency_s, signals.latency_attainment
    base = max(signals.ready_replicas or 0, 1)
    enough = attained is not None and (signals.latency_requests or 0.0) >= MIN_ATTAINMENT_REQUESTS
    if value is None and not enough:
        if SignalName.LATENCY in signals.no_traffic:
            return SignalVerdict(name, None, slo_s, None, Status.IDLE, note or "no requests in the window")
        return SignalVerdict(name, None, slo_s, None, Status.MISSING, note or "no series")
    target = config.latency_quantile
    if enough and attained is not None:
        if attained < target:
            wanted = base * target / max(attained, 1.0 / LATENCY_MAX_STEP)
            ask = max(base + 1, ceil_ratio(wanted, 1.0))
            seen = signals.latency_requests or 0.0
            why = f"{attained:.1%} of {seen:.0f} requests within the SLO (target {target:g})"
            return SignalVerdict(name, value, slo_s, ask, Status.OK, _join(note, why), now_replicas=ask)
    elif value is not None and value > slo_s:
        proportional = ceil_ratio(base * value, slo_s)
        ask = max(base + 1, min(proportional, int(LATENCY_MAX_STEP * base)))
        why = note if ask == proportional else _join(note, f"capped at {LATENCY_MAX_STEP:g}x ready")
        return SignalVerdict(name, value, slo_s, ask, Status.OK, why, now_replicas=ask)
    if value is not None and value > LATENCY_GUARD_FRACTION * slo_s:
        return SignalVerdict(name, value, slo_s, None, Status.GUARD, note or "within 80 % of the SLO")
    return SignalVerdict(name, value, slo_s, None, Status.IDLE, note)


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a and b else a or b


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
        verdicts.append(_latency_verdict(signals, config))
    return tuple(verdicts)


def _unconfigured(verdicts: tuple[SignalVerdict, ...], signals: Signals) -> tuple[SignalVerdict, ...]:
    """Missing signals the source found absent for longer than the staleness bound stop holding the fleet
    while another signal is measured: a GPU target whose DCGM series never arrive (dcgm-exporter without
    pod mapping) would otherwise hold the fleet at its peak forever. With nothing else measured they stay
    missing (no data is never zero)."""
    if not signals.unconfigured:
        return verdicts
    measured = any(v.status != Status.MISSING for v in verdicts if v.signal not in signals.unconfigured)
    if not measured:
        return verdicts
    return tuple(
        replace(
            v,
            status=Status.UNCONFIGURED,
            note=f"configuration problem: {v.note or 'no series'}, for longer than the staleness bound; "
            "not holding the fleet",
        )
        if v.status == Status.MISSING and v.signal in signals.unconfigured
        else v
        for v in verdicts
    )


_TARGET_MEASURE = {SignalName.QUEUE: Measure.QUEUE, SignalName.TOKENS: Measure.TOKENS}


def _latency_waits(v: SignalVerdict, current: int) -> SignalVerdict:
    """While replicas load, latency asks for no more than the fleet already coming.

    pXX is measured over the rate window on the Ready replicas: it still shows the queueing that the loading
    replicas were started to relieve, and a request already queued on a pod stays there. Asking again on
    it compounds: 9 Ready of 17 at 2x the SLO asked 18, then 24, 30, 34 as each step came up, with the
    same stale window. The projection still scales up while replicas load.
    """
    if v.signal != SignalName.LATENCY or v.desired_replicas is None or v.desired_replicas <= current:
        return v
    note = _join(v.note, f"held at the {current} replica(s) already coming")
    return replace(v, desired_replicas=current, note=note)


def _latency_has_room(
    signals: Signals, config: ScalerConfig, projection: Projection, ready: int | None
) -> bool:
    """A projection just over the Ready fleet while latency has plenty of room (see ``decide``)."""
    slo_s = config.latency_slo_s
    if slo_s is None or not ready or signals.latency_s is None or signals.latency_attainment is None:
        return False
    if (signals.latency_requests or 0.0) < MIN_ATTAINMENT_REQUESTS:
        return False
    return (
        ready < projection.replicas <= ready + MARGINAL_REPLICAS
        and signals.latency_attainment >= config.latency_quantile
        and signals.latency_s <= ROOM_FRACTION * slo_s
    )


def _demonstrated_floor(
    projection: Projection | None, capacity: Capacity, desired: int, current: int
) -> Floor | None:
    """While the learned capacity rests on fewer than ``THIN_FIT_SAMPLES`` busy steps: the fewest replicas
    (up to ``current``) that keep each one's load within ``DEMONSTRATED_STEP`` times what a past minute
    showed one replica serves within the SLO; None when the fit is the prior's or well grounded, nothing was
    shown, or that holds nothing above ``desired``. Worked example (``DEMONSTRATED_STEP``): 31.4
    requests/s, 4.87 shown: 31.4 / 6.09 = 5.2, so 6 of the 7 stay where the model asked for 4."""
    shown = capacity.demonstrated_per_s
    thin = capacity.cost.source == CapacitySource.LEARNED and capacity.cost.samples < THIN_FIT_SAMPLES
    if projection is None or not shown or not thin:
        return None
    lowest = ceil_replicas(projection.forecast_per_s / (DEMONSTRATED_STEP * shown))
    if lowest <= desired:
        return None
    why = (
        f"{projection.forecast_per_s:.1f} requests/s on {lowest - 1} replica(s) would be more than "
        f"{DEMONSTRATED_STEP:g} x the {shown:.2f}/s a minute showed one serves within the SLO, and the "
        f"learned capacity rests on {capacity.cost.samples} busy steps (fewer than {THIN_FIT_SAMPLES})"
    )
    return Floor(FloorKind.DEMONSTRATED, min(lowest, current), why)


def _signal_asks(verdicts: tuple[SignalVerdict, ...]) -> list[tuple[int, Reason]]:
    """Each signal's ask, with the signal as its reason."""
    return [(v.desired_replicas, Reason(v.signal.value)) for v in verdicts if v.desired_replicas is not None]


def _latency_drains_in_time(v: SignalVerdict, projection: Projection, ready: int) -> SignalVerdict:
    """Latency asks beyond the Ready fleet only when the projection says that fleet falls short.

    The projection is the horizon's arrivals plus the backlog drained within it, per replica: when it fits
    the Ready fleet, the requests now over the SLO are queued behind a burst that those replicas clear
    before a replica asked now could be Ready, so the ask would buy a cold start that serves nothing. The
    breach still holds the fleet (a guard, never a scale-down). Worked example (a bursts trace): 1 Ready
    replica, p99 1.16 s of a 1 s SLO two windows running (98.9 % in time), projection 0.77: the second
    replica it asked for was Ready 70 s later, to an empty queue, and went at the next step.
    """
    if (
        v.signal != SignalName.LATENCY
        or v.desired_replicas is None
        or v.desired_replicas <= ready
        or projection.replicas > ready
    ):
        return v
    note = _join(
        v.note,
        f"the {ready} Ready replica(s) drain the backlog and serve the arrivals within the "
        f"{projection.horizon_s:.0f} s horizon (projection {projection.replicas:.2f}), so no ask",
    )
    return replace(v, desired_replicas=None, status=Status.GUARD, note=note)


def _latency_persists(v: SignalVerdict, state: State, config: ScalerConfig) -> SignalVerdict:
    """Latency asks for more only when the misses persist: the last full window missed the target too.

    A replica asked for now is Ready a horizon later; misses confined to one window (the start of a busy
    period, one burst) are over by then, and warm headroom is what serves them (priced against the budget
    by the headroom floor). Two windows in a row are a fleet too small, which a replica more fixes.
    Worked example: 1 Ready replica, 7 of 200 requests late in the last minute (96.5 %) after a minute at
    100 %: no ask; the next minute at 96 % again: ask 2.
    """
    if v.signal != SignalName.LATENCY or v.status != Status.OK or v.desired_replicas is None:
        return v
    last = state.latency_windows[-1]
    slo_s = config.latency_slo_s
    assert slo_s is not None
    if (
        last.requests >= MIN_ATTAINMENT_REQUESTS
        and attainment_at(last, last.ready, slo_s) >= config.latency_quantile
    ):
        note = _join(v.note, "transient: the last full minute met the target, so no ask")
        return replace(v, desired_replicas=None, status=Status.GUARD, note=note)
    return v


# -- the asks over the history (for the keep-warm economics and the headroom floor) --------------------------
def ask_history(verdicts: tuple[SignalVerdict, ...], state: State, capacity: Capacity | None) -> Series:
    """The replicas asked at each history step: the projection on the served requests, and each target
    signal on its own history; the largest per step."""
    # In numpy, one array per source: a Python loop over 240 steps and each target signal was 60 % of
    # a busy Deployment's decide (ad-hoc cProfile). The same arithmetic as ceil_ratio, step by step.
    times: list[np.ndarray] = []
    asks: list[np.ndarray] = []
    if capacity is not None:
        needs = reactive_needs(state, capacity)
        times.append(np.asarray(needs.times_s, dtype=np.float64))
        asks.append(np.asarray(needs.values, dtype=np.float64))
    for v in verdicts:
        measure = _TARGET_MEASURE.get(v.signal)
        history = state.history.get(measure) if measure is not None else None
        if history is None or v.status != Status.OK:
            continue
        times.append(np.asarray(history.times_s, dtype=np.float64))
        asks.append(np.maximum(0.0, np.ceil(np.asarray(history.values, dtype=np.float64) / v.target - 1e-9)))
    if not times:
        return Series()
    ordered, at = np.unique(np.concatenate(times), return_inverse=True)
    most = np.zeros(len(ordered))
    np.fmax.at(most, at, np.concatenate(asks))  # fmax: a NaN need leaves the step as it was, as max() did
    return Series(ordered.tolist(), most.tolist())


def _wake_misses(state: State, horizon_s: float, cold_start_s: float, now_s: float) -> float:
    """Requests that arrived in the first horizon of a burst after an idle gap long enough that the last
    replica would have been released (a cold start): each would have waited for a cold start at zero.
    Weighted by age like the headroom windows."""
    served = state.history.get(Measure.REQUESTS)
    gateway = state.history.get(Measure.GATEWAY)
    if served is None or len(served) < 2:
        return 0.0
    t = np.asarray(served.times_s)
    rate = np.asarray(served.values)
    step = float(np.median(np.diff(t)))
    demand = rate.copy()
    if gateway is not None and len(gateway):
        g = dict(zip(gateway.times_s, gateway.values, strict=True))
        demand = demand + np.array([g.get(x, 0.0) for x in t])
    busy = demand > 0
    total = 0.0
    last_busy = None
    for i in range(len(t)):
        if not busy[i]:
            continue
        if last_busy is not None and t[i] - last_busy > cold_start_s + step:
            # an onset after a gap long enough to have released the last replica: its first horizon waited
            inside = (t >= t[i]) & (t < t[i] + horizon_s)
            arrived = float(rate[inside].sum() * step)
            total += math.exp(-(now_s - t[i]) / AGE_SCALE_S) * arrived
        last_busy = t[i]
    return total


def _too_little_history(headroom: Headroom, asks: Series, now_s: float, cold_start_s: float) -> Headroom:
    """The last replica stays while the asks' history spans fewer than MIN_HISTORY_COLD_STARTS cold
    starts: too little to tell a lull from the end of the demand. Worked example (azure-code's first
    half, whose replayed warm-up opens with a 40 s burst and then 144 s of nothing): about 100 s into the
    history no window yet showed what a return after a lull costs, the floor read 0 and the replica went;
    the return waited for a cold start, and the run ended at 0.968 attainment for 21.65 GPU-h and 12 cold
    starts, against 1.0 for 14.77 and 6 with this rule (scripted runs of the scorecard's settings). A new
    Deployment, or one back from zero (its pods' series start again), keeps one replica for 10 cold
    starts (600 s at 60 s) before the history may release it."""
    if headroom.replicas > 0 or not len(asks):
        return headroom
    span_s = now_s - float(asks.times_s[0])
    if span_s >= MIN_HISTORY_COLD_STARTS * cold_start_s:
        return headroom
    why = (
        f"1 warm replica: {span_s:.0f} s of demand history is under {MIN_HISTORY_COLD_STARTS:g} cold starts "
        f"({MIN_HISTORY_COLD_STARTS * cold_start_s:.0f} s), too little to price releasing the last one"
    )
    return replace(headroom, replicas=1, why=why)


def _silenced(
    headroom: Headroom, asks: Series, now_s: float, cold_start_s: float, rate_window_s: float | None
) -> Headroom:
    """Headroom insures the next burst of a demand that recurs. Once no request has come for LULL_FACTOR
    times the longest lull the history shows between its requests (and at least a cold start), the bursts
    have stopped recurring and the floor keeps one replica; the last one is priced as before (the wake
    misses, ``scaleToZero``).

    The windows' ages alone never release it: while nothing arrives they all age together, so the
    attainment they price is unchanged, and the floor held until their weighted requests fell under
    MIN_REQUESTS. Worked example: 40,000 recent requests held 10 warm for their bursts, then none came:
    40,000 x e^(-s / 600) < 50 only at s = 600 ln 800 = 4,011 s, 67 minutes of 10 idle replicas. On the
    multi-client overlay of the conversation trace at 4.2x and the code trace at 1.9x (seed 0), the 10 held
    through the 300 s after the last request: 0.9846 @ 12.82 GPU-h, and 0.9846 @ 11.29 with this rule.
    Not the keep-warm break-even: its price is GPU time alone, and the code trace's lulls of 60-170 s
    between bursts each released the floor its next burst needed (the trace's [0:1800], seed 0: 0.968 ->
    0.477 attainment)."""
    if headroom.replicas <= 1:
        return headroom
    idle_s, gaps = level_idle(asks, 1, now_s, rate_window_s)
    # A lull shorter than the rate's window never reads as zero: the longest one seen is at least that.
    longest_s = max(max(gaps, default=0.0), rate_window_s or 0.0)
    if idle_s is None or idle_s < cold_start_s or idle_s <= LULL_FACTOR * longest_s:
        return headroom
    why = (
        f"1 warm replica: no request for {idle_s:.0f} s, over {LULL_FACTOR:g} x the longest lull in the "
        f"history ({longest_s:.0f} s) and a cold start ({cold_start_s:.0f} s): the bursts stopped, so the "
        f"{headroom.replicas} held for them lapse"
    )
    return replace(headroom, replicas=1, why=why)


def _value_at(series: Series | None, t_s: float) -> float:
    """The series' value at the last step at or before ``t_s`` (0 without one)."""
    if series is None or not len(series):
        return 0.0
    i = int(np.searchsorted(np.asarray(series.times_s), t_s, side="right")) - 1
    return float(series.values[i]) if i >= 0 else 0.0


def window_loads(state: State, capacity: Capacity, window_s: float = 60.0) -> list[WindowLoad]:
    """Each latency window's throughput need and whether its replicas were saturated.

    Arrivals are the requests the window served plus the growth of the requests waiting (in the engine
    and in front of it). Saturated: a backlog grew by more than a tenth of what was served, or the
    replicas ran above SATURATED_UTILISATION. Worked example: 1 Ready replica served 300 requests in a
    minute (5/s) while its queue grew by 900: arrivals 20/s; at 0.16 s of work each and rho* 0.8 the window
    needed 20 x 0.16 / 0.8 = 4 replicas, and its multi-second latencies were backlog, not a burst.
    """
    queue = state.history.get(Measure.QUEUE)
    gateway = state.history.get(Measure.GATEWAY)
    out = []
    for w in state.latency_windows:
        start = w.end_s - window_s
        growth = sum(_value_at(s, w.end_s) - _value_at(s, start) for s in (queue, gateway) if s is not None)
        served = w.requests / window_s
        arrivals = served + max(0.0, growth) / window_s
        utilisation = served * capacity.work_s_per_request / max(w.ready, 1e-9)
        saturated = growth > 0.1 * w.requests or utilisation >= SATURATED_UTILISATION
        carried = sum(_value_at(s, start) for s in (queue, gateway) if s is not None)
        out.append(WindowLoad(capacity.replicas_for(arrivals), saturated, utilisation, carried))
    return out


# -- decide -------------------------------------------------------------------------------------------------
def decide(signals: Signals, state: State, config: ScalerConfig, now_s: float) -> Decision:
    """Desired replicas for one ScaledObject from its signals and state; pure and deterministic."""
    cold = estimate_cold_start(state.cold_start_samples_s, config.cold_start_s)
    horizon_s = cold.seconds + CONTROL_DELAY_S
    current = signals.current_replicas
    ready = signals.ready_replicas
    warming = state.warming_replicas or 0
    # Pods loading for less than STUCK_COLD_STARTS cold starts are a scale-up in progress (without ages,
    # every warming pod is).
    loading = [a for a in state.warming_ages_s if a < STUCK_COLD_STARTS * cold.seconds]
    in_progress = bool(loading) or (warming > 0 and not state.warming_ages_s)
    phase = (
        Phase.AT_ZERO
        if current == 0 and warming == 0
        else Phase.STARTING
        if current and not ready and not signals.unreadable_pods
        else Phase.WARMING
        if in_progress
        else Phase.SERVING
    )
    capacity = estimate_capacity(
        signals,
        state.history,
        config.latency_slo_s,
        config.latency_metric,
        now_s,
        state.latency_windows,
        config.latency_quantile,
    )
    verdicts = _unconfigured(evaluate_signals(signals, config), signals)
    if current and in_progress:
        verdicts = tuple(_latency_waits(v, current) for v in verdicts)
    elif config.latency_slo_s is not None and state.latency_windows:
        verdicts = tuple(_latency_persists(v, state, config) for v in verdicts)
    notes: list[tuple[str, str]] = sorted({**state.notes, **signals.source_notes}.items())

    def make(
        valid: bool,
        desired: int,
        reason: Reason,
        *,
        active: bool | None = None,
        projection: Projection | None = None,
        headroom: Headroom | None = None,
        burst: BurstCap | None = None,
        floors: tuple[Floor, ...] = (),
        idle: Idle | None = None,
        note: str = "",
    ) -> Decision:
        if not config.scale_to_zero and valid:
            desired = max(desired, 1)
        return Decision(
            valid=valid,
            desired_replicas=desired,
            active=(valid and desired > 0) if active is None else active,
            reason=reason,
            phase=phase,
            signals=verdicts,
            current_replicas=current,
            ready_replicas=ready,
            now_s=now_s,
            cold_start=cold,
            warming_replicas=state.warming_replicas,
            replica_source=state.replica_source,
            capacity=capacity,
            projection=projection,
            headroom=headroom,
            burst=burst,
            floors=floors,
            idle=idle,
            reason_note=note,
            notes=tuple(notes),
        )

    asks = _signal_asks(verdicts)
    missing = [v.signal.value for v in verdicts if v.status == Status.MISSING]

    # -- at zero, or the first step loading: size from the demand waiting in front of the Deployment ------
    if phase == Phase.AT_ZERO or (phase == Phase.STARTING and not asks):
        if config.activation_query is not None:
            demand = (state.activation_value, state.activation_history, "activationQuery")
        else:
            queue = (
                signals.waiting_requests if signals.waiting_requests is not None else signals.queue_requests
            )
            demand = (queue, state.history.get(Measure.QUEUE), "queue")
        value = demand[0]
        ready_in_s = horizon_s  # until the first replica can serve
        if phase == Phase.STARTING:
            oldest = max(state.warming_ages_s) if state.warming_ages_s else 0.0
            ready_in_s = max(0.0, cold.seconds - oldest) if state.warming_ages_s else cold.seconds / 2
            if value is None:
                return make(False, current or 0, Reason.NO_DATA, note="no pod Ready and no demand reading")
        if value is None or value <= config.activation_threshold:
            if config.activation_query is not None and value is None:
                notes.append(("activation", "activationQuery returned no data: treated as no demand at zero"))
            if phase == Phase.STARTING:
                return make(True, current or 0, Reason.LOADING, note="the first step is loading")
            if asks and max(a for a, _ in asks) > 0:
                # A signal still reports demand (tokens from a pod just deleted): follow it.
                ask, ask_reason = max(asks, key=lambda a: a[0])
                return make(True, ask, ask_reason)
            if state.replica_source == ReplicaSource.METRICS:
                # Zero pods is inferred from the absence of their series, which a Deployment whose pods are
                # not scraped (a missing PodMonitor, a wrong `deployment` key) looks like too: say so.
                notes.append(
                    (
                        "at_zero",
                        "no series from this Deployment's pods, so it is taken to be at zero; if its pods "
                        "are running, Prometheus is not scraping them (check the PodMonitor and the "
                        "deployment key), and without the Kubernetes API or kube-state-metrics the scaler "
                        "cannot tell",
                    )
                )
            return make(True, 0, Reason.AT_ZERO)
        # The backlog drains over the reaction horizon in every phase: a replica asked now is Ready a full
        # horizon from now, however close the first step is. Over the first step's remaining load time
        # instead, 240 requests waiting 2 s before it is Ready asked 240 / 2 s = 120/s: 15 replicas at 8/s
        # each where 240 / 75 s = 3.2/s on top of 3.5/s arriving needs 1 (idle-gaps-s1, 1,260 s).
        projection = project(signals, state, capacity, horizon_s, now_s, at_zero_demand=demand)
        assert projection is not None
        # Signals still reporting (a pod just deleted) may ask for more than the demand waiting.
        desired = max([1, projection.ask, current or 0, *(a for a, _ in asks)])
        if config.target_queue_per_replica is not None:
            # The queue target guards the first step too: backlog plus arrivals until Ready, per replica.
            # 24 waiting, 0.4/s arriving, 60 s cold start, 8 per replica: ceil((24 + 0.4 x 60) / 8) = 6.
            queued = value + projection.arrivals_per_s * ready_in_s
            desired = max(desired, ceil_ratio(queued, config.target_queue_per_replica))
        return make(True, desired, Reason.FROM_ZERO, projection=projection)

    # -- serving: the projection and the targets ask, then the floors ---------------------------------------
    projection = project(signals, state, capacity, horizon_s, now_s, predictive=config.predictive)
    if projection is not None:
        if ready:
            verdicts = tuple(_latency_drains_in_time(v, projection, ready) for v in verdicts)
            asks = _signal_asks(verdicts)
        demand_ask = projection.ask
        if _latency_has_room(signals, config, projection, ready):
            # The projection is within half a replica of the Ready fleet and latency has room (the last
            # minute met the target with its tail under ROOM_FRACTION of the SLO): the capacity estimate,
            # not the demand, is the uncertain part. 1.1 replicas' worth on one replica whose p99 is 0.3 s
            # of a 1 s SLO holds at 1 rather than paying a cold start for a rounding.
            demand_ask = ready or demand_ask
        asks.append((demand_ask, Reason.DEMAND))
    guarded = any(v.status == Status.GUARD for v in verdicts)
    if not asks and not guarded:
        note = f"{', '.join(missing)} missing" if missing else "no engine metrics"
        return make(False, current or 0, Reason.NO_DATA, projection=projection, note=note)
    desired, reason = max(asks, key=lambda a: a[0]) if asks else (0, Reason.DEMAND)
    # The needs history is read only for an ask beyond the Ready fleet (ask_history reads it again below,
    # with the target signals' asks; most refreshes ask no more than is Ready and pay for neither read).
    burst = (
        short_burst_cap(desired, ready, reactive_needs(state, capacity), horizon_s)
        if projection is not None and ready and desired > ready
        else None
    )
    if burst is not None:
        desired, reason = burst.replicas, Reason.SHORT_BURST
    floors: list[Floor] = []

    history_asks = ask_history(verdicts, state, capacity if projection is not None else None)
    # the idle lag of a windowed rate holds only for asks read from one (the served requests)
    rate_window_s = state.rate_window_s if capacity is not None and projection is not None else None
    headroom: Headroom | None = None
    if config.latency_slo_s is not None and state.latency_windows:
        wake = _wake_misses(state, horizon_s, cold.seconds, now_s) if config.scale_to_zero else 0.0
        base_s = capacity.cost.prefill_s_per_token * capacity.prompt_tokens_per_request + (
            2 * capacity.cost.step_base_s
        )
        headroom = headroom_floor(
            state.latency_windows,
            history_asks,
            config.latency_slo_s,
            config.latency_quantile,
            horizon_s,
            now_s,
            wake_misses=wake,
            base_s=base_s if config.latency_metric.value == "ttft" else 0.0,
            loads=window_loads(state, capacity),
        )
        headroom = _too_little_history(headroom, history_asks, now_s, cold.seconds)
        headroom = _silenced(headroom, history_asks, now_s, cold.seconds, rate_window_s)
        floors.append(Floor(FloorKind.HEADROOM, headroom.replicas, headroom.why))
        if headroom.replicas > desired:
            desired, reason = headroom.replicas, Reason.HEADROOM

    floor = current or 0
    idle: Idle | None = None
    if desired < floor:
        if missing or signals.unreadable_pods:
            why = f"{', '.join(missing) or 'nothing'} missing, {signals.unreadable_pods} pod(s) unreadable"
            floors.append(Floor(FloorKind.MISSING_DATA, floor, why))
        if guarded:
            floors.append(Floor(FloorKind.LATENCY_GUARD, floor, "latency within 80 % of its SLO"))
        if in_progress:
            floors.append(
                Floor(FloorKind.LOADING, floor, f"{warming} replica(s) still loading from a scale-up")
            )
        kv = signals.kv_cache_fraction
        if kv is not None and kv >= KV_CACHE_FULL_FRACTION:
            why = (
                f"KV cache {kv:.0%} full (at least {KV_CACHE_FULL_FRACTION:.0%}): the replicas are saturated"
            )
            floors.append(Floor(FloorKind.KV_CACHE, floor, why))
        demonstrated = _demonstrated_floor(projection, capacity, desired, floor)
        if demonstrated is not None:
            floors.append(demonstrated)
        kept = keep_warm_floor(
            history_asks,
            floor,
            desired,
            now_s,
            cold.seconds,
            config.min_idle_s,
            rate_window_s,
            marginal_replicas=MARGINAL_REPLICAS,
        )
        if kept.held and kept.verdict is not None:
            floors.append(
                Floor(FloorKind.KEEP_WARM, kept.replicas, f"replica {kept.level}: {kept.verdict.why}")
            )
        if desired <= 0 and kept.level <= 1 and kept.verdict is not None:
            v = kept.verdict
            idle = Idle(v.idle_s, v.expected_idle_s, v.penalty_s, v.release, v.why)
        blocking = [f for f in floors if f.kind != FloorKind.HEADROOM and f.replicas > desired]
        if blocking:
            top = max(blocking, key=lambda f: (f.replicas, -list(FloorKind).index(f.kind)))
            desired = min(top.replicas, floor)
            reason = {
                FloorKind.MISSING_DATA: Reason.HOLD_MISSING,
                FloorKind.LATENCY_GUARD: Reason.LATENCY_GUARD,
                FloorKind.KV_CACHE: Reason.KV_CACHE,
                FloorKind.LOADING: Reason.LOADING,
                FloorKind.KEEP_WARM: Reason.KEEP_WARM,
                FloorKind.DEMONSTRATED: Reason.DEMONSTRATED,
            }[top.kind]
    if desired == 0 and floor > 0:
        # The last replica goes: only when nothing holds it and scaling to zero is allowed.
        done = {"projection": projection, "headroom": headroom, "floors": tuple(floors), "idle": idle}
        if not config.scale_to_zero:
            return make(True, 1, Reason.KEEP_WARM, note="scaleToZero is false", **done)  # type: ignore[arg-type]
        return make(True, 0, Reason.RELEASE, active=False, **done)  # type: ignore[arg-type]
    return make(
        True,
        desired,
        reason,
        projection=projection,
        headroom=headroom,
        burst=burst,
        floors=tuple(floors),
        idle=idle,
    )
