"""The decision core: ``decide(signals, state, config, now_s) -> Decision``.

Pure: no gRPC, no Prometheus client, no Kubernetes, no clock. The gRPC service, the ``explain`` CLI and
the simulator all call this one function, so they all tell the same story.

Each configured signal yields a ``SignalVerdict``: its measured value and the replicas it alone would ask
for. The decision is the largest of those, raised to a floor when data is missing or latency is close
to its SLO (neither may shrink the fleet). "No decision" is a value (``valid=False``), not an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from scaler.core.coldstart import ColdStart, estimate_cold_start
from scaler.core.config import ScalerConfig
from scaler.core.forecast import forecast_demand, theil_sen_slope
from scaler.core.keepwarm import Idleness, decide_release, gaps_between, measure_idleness
from scaler.core.signals import SignalName, Signals
from scaler.core.state import ReplicaSource, Series, State

# Below the SLO, latency only guards: while pXX is above this fraction of the SLO, no scale-down.
LATENCY_GUARD_FRACTION = 0.8
# Above the SLO, latency may at most double the ready replicas per decision.
LATENCY_MAX_STEP = 2
# Scale-down stabilisation: a replica above the current ask is released by the keep-warm economics
# (see _stabilisation_floor), and never within this long of the last ask that needed it.
MIN_STABILISATION_S = 60.0
# ...and at most halves the fleet per HALVING_PERIOD_S: 16 -> 8 -> 4 -> 2 -> 1 takes four minutes.
HALVING_PERIOD_S = 60.0
# The arrival rate at zero and while warming is the robust slope of the queue over this window.
ARRIVAL_WINDOW_S = 60.0
ARRIVAL_MIN_SPAN_S = 30.0
# Signals whose history is demand (forecast, stabilisation, idleness); GPU and latency only guard.
DEMAND_SIGNALS = (SignalName.QUEUE, SignalName.TOKENS)


class Status(StrEnum):
    OK = "ok"  # measured; desired_replicas is this signal's ask
    MISSING = "missing"  # no data: holds the fleet, never shrinks it
    GUARD = "guard"  # latency under its SLO but close: forbids scale-down
    IDLE = "idle"  # latency well under its SLO: no opinion
    # absent longer than the staleness bound while other signals are measured: a configuration problem,
    # reported, and it holds nothing
    UNCONFIGURED = "unconfigured"


class Reason(StrEnum):
    """Why the decision is what it is; one of the signal names, or one of these."""

    HOLD_MISSING = "hold-missing-data"
    LATENCY_GUARD = "latency-guard"
    IDLE = "idle"  # no demand and nothing holds replicas: the fleet may shrink (not to zero)
    AT_ZERO = "at-zero-no-demand"
    NO_DATA = "no-data"
    FROM_ZERO = "from-zero"  # demand at zero replicas: the first step, right-sized for one cold start
    KEEP_WARM = "keep-warm"  # idle, but releasing the last replica does not pay (yet)
    RELEASE = "idle-release"  # idle long enough that a cold start is cheaper than idling: go to zero
    STABILISED = "stabilised"  # a scale-down held back by the recent asks or the halving limit


@dataclass(frozen=True)
class SignalVerdict:
    signal: SignalName
    value: float | None
    target: float
    desired_replicas: int | None
    status: Status
    note: str = ""
    # The ask from the measured value alone, and the forecast one cold start ahead (None: not forecast).
    now_replicas: int | None = None
    forecast_value: float | None = None


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
                **({"forecast_value": v.forecast_value} if v.forecast_value is not None else {}),
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
    ask = ceil_ratio(value, target)
    return SignalVerdict(name, value, target, ask, Status.OK, note, now_replicas=ask)


def _gpu_verdict(util_percent: float | None, ready: int | None, target: float, note: str) -> SignalVerdict:
    if util_percent is None or not ready:
        why = note or ("no series" if util_percent is None else "no ready replicas")
        return SignalVerdict(SignalName.GPU, util_percent, target, None, Status.MISSING, why)
    # The HPA's own formula: ready=4 at 90 % average against 60 % asks ceil(4 x 90 / 60) = 6.
    ask = ceil_ratio(ready * util_percent, target)
    return SignalVerdict(SignalName.GPU, util_percent, target, ask, Status.OK, note, now_replicas=ask)


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
        # At most double per decision: a tail latency is a lagging, windowed signal, and queueing delay
        # is not proportional to 1 / replicas -- p99 19 s against 1 s would ask 19x the fleet for a queue
        # that one more replica drains. The queue and forecast signals size the step; latency corrects.
        base = max(ready or 0, 1)
        proportional = ceil_ratio(base * latency_s, slo_s)
        ask = max(base + 1, min(proportional, LATENCY_MAX_STEP * base))
        why = (
            note
            if ask == proportional
            else f"{note + '; ' if note else ''}capped at {LATENCY_MAX_STEP:g}x ready"
        )
        return SignalVerdict(name, latency_s, slo_s, ask, Status.OK, why, now_replicas=ask)
    if latency_s > LATENCY_GUARD_FRACTION * slo_s:
        return SignalVerdict(name, latency_s, slo_s, None, Status.GUARD, note or "within 80 % of the SLO")
    return SignalVerdict(name, latency_s, slo_s, None, Status.IDLE, note)


def _latency_waits(v: SignalVerdict, current: int) -> SignalVerdict:
    """While replicas load, latency asks for no more than the fleet already coming.

    pXX is measured over the rate window on the Ready replicas: it still shows the queueing that the loading
    replicas were started to relieve, and a request already queued on a pod stays there. Asking again on
    it compounds: 9 Ready of 17 at 2x the SLO asked 18, then 24, 30, 34 as each step came up, with the
    same stale window. The queue and tokens signals still scale up while replicas load.
    """
    if v.signal != SignalName.LATENCY or v.desired_replicas is None or v.desired_replicas <= current:
        return v
    note = f"{v.note + '; ' if v.note else ''}held at the {current} replica(s) already coming"
    return replace(v, desired_replicas=current, note=note)


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


def _cold_start(state: State, config: ScalerConfig) -> ColdStart:
    return estimate_cold_start(state.cold_start_samples_s, config.cold_start_s)


def _window(series: Series | None, since_s: float, now_s: float) -> tuple[list[float], list[float]]:
    if series is None:
        return [], []
    pairs = [(t, v) for t, v in zip(series.times_s, series.values, strict=True) if since_s <= t <= now_s]
    return [t for t, _ in pairs], [v for _, v in pairs]


def arrival_rate_per_s(series: Series | None, now_s: float) -> float:
    """Robust growth rate of a backlog (requests/s) over the last ARRIVAL_WINDOW_S; 0 when not growing.

    While nothing serves (at zero, or before warming replicas are Ready) the backlog grows at the arrival
    rate: a gateway queue going 0, 10, 20, 30 at 5 s steps is 2 requests/s.
    """
    times, values = _window(series, now_s - ARRIVAL_WINDOW_S, now_s)
    # Only from the first non-zero point: the jump from nothing to a burst is backlog arriving at once,
    # not a rate. 0, 0, 0, 20, 20, 20 is a burst of 20 and no arrivals since (rate 0); over the whole
    # window Theil-Sen would read the step as a slope, since most pairs straddle it.
    start = next((i for i, v in enumerate(values) if v > 0), len(values))
    times, values = times[start:], values[start:]
    # Fewer than 3 points, or less than ARRIVAL_MIN_SPAN_S of them, cannot tell a rate from a burst
    # that straddled two scrapes (pods appearing one scrape apart read 4, 8, 12: not 4 requests/s).
    if len(times) < 3 or times[-1] - times[0] < ARRIVAL_MIN_SPAN_S:
        return 0.0
    return max(0.0, theil_sen_slope(np.asarray(times), np.asarray(values)))


def _forecast(
    verdict: SignalVerdict, history: Series | None, now_s: float, horizon_s: float
) -> SignalVerdict:
    """The verdict raised to what the demand will need one cold start ahead (bounded, growth only)."""
    if verdict.status != Status.OK or verdict.value is None or history is None:
        return verdict
    fc = forecast_demand(history, verdict.value, now_s, horizon_s)
    if fc is None:
        return verdict
    ask = ceil_ratio(fc.value, verdict.target)
    if ask <= (verdict.desired_replicas or 0):
        return replace(verdict, forecast_value=fc.value)
    note = f"forecast {fc.value:.4g} in {horizon_s:.0f} s" + (" (bounded +50 %)" if fc.bounded else "")
    return replace(verdict, desired_replicas=ask, forecast_value=fc.value, note=note)


def _warming_queue(
    verdict: SignalVerdict, state: State, now_s: float, remaining_s: float
) -> tuple[SignalVerdict, dict[str, Any]]:
    """While replicas warm, size the queue for when they are Ready: backlog now plus what arrives meanwhile.

    Warming replicas are capacity that is coming, so the ask is the total the queue will need, compared
    against ready + warming: a queue of 40 with 5 replicas of 8 warming asks 5, not 5 more. If arrivals
    keep the queue growing at 2/s with 30 s left to Ready, it will be 100 then: 13 replicas.
    During the warm-up this projection stays level at a constant arrival rate (the queue grows by what
    the shrinking remaining time no longer adds), so it does not pile on replicas as the queue grows.
    """
    if verdict.status != Status.OK or verdict.value is None:
        return verdict, {}
    rate = arrival_rate_per_s(state.demand_history.get(SignalName.QUEUE), now_s)
    projected = verdict.value + rate * remaining_s
    ask = max(verdict.desired_replicas or 0, ceil_ratio(projected, verdict.target))
    info = {"arrival_per_s": rate, "remaining_warm_s": remaining_s, "projected_queue": projected}
    if ask == verdict.desired_replicas:
        return verdict, info
    note = f"queue at Ready ~{projected:.4g} ({rate:.3g}/s for {remaining_s:.0f} s)"
    return replace(verdict, desired_replicas=ask, note=note), info


def _demand_busy(signals: Signals, state: State) -> bool:
    return any((v or 0) > 0 for v in (signals.queue_requests, signals.tokens_per_s, state.activation_value))


def _asks_history(verdicts: tuple[SignalVerdict, ...], state: State) -> tuple[np.ndarray, np.ndarray, float]:
    """(times, replicas asked at each time, step): the demand signals' past asks, the largest per time."""
    by_time: dict[float, int] = {}
    steps: list[float] = []
    for v in verdicts:
        history = state.demand_history.get(v.signal)
        if v.signal not in DEMAND_SIGNALS or v.status != Status.OK or history is None or not len(history):
            continue
        times = np.asarray(history.times_s)
        if len(times) >= 2:
            steps.append(float(np.diff(times).min()))
        for t, value in zip(history.times_s, history.values, strict=True):
            by_time[t] = max(by_time.get(t, 0), ceil_ratio(value, v.target))
    ordered = sorted(by_time)
    return np.asarray(ordered), np.asarray([by_time[t] for t in ordered]), min(steps, default=0.0)


def _stabilisation_floor(
    verdicts: tuple[SignalVerdict, ...], state: State, current: int, desired: int, now_s: float, cold_s: float
) -> tuple[int, str]:
    """The lowest a scale-down may go now, and why.

    Each replica above ``desired`` is released by the same keep-warm economics as the last one: replica
    level k (the k-th replica) stays while releasing it does not pay, judged from the times the past asks
    reached k -- how long ago, and the gaps between. Bursts that recur every 90 s keep their replicas
    warm through the lulls (a cold start each time would cost more and miss the SLO); a one-off burst
    lets its replicas go after the break-even time. Never within MIN_STABILISATION_S of the last ask, and
    never more than halving per HALVING_PERIOD_S.
    """
    floor, why = 0, ""
    times, asks, step_s = _asks_history(verdicts, state)
    span_s = now_s - float(times[0]) if len(times) else 0.0
    for level in range(current, desired, -1):
        busy = times[asks >= level]
        if busy.size == 0:
            continue  # never needed in the history we can see: no reason to hold it
        idle_s = max(0.0, now_s - float(busy.max()))
        idleness = Idleness(idle_s, gaps_between(busy, step_s) if step_s > 0 else (), span_s)
        release = decide_release(idleness, cold_s, MIN_STABILISATION_S)
        if not release.release:
            floor, why = level, f"replica {level}: {release.why}"
            break
    _, replicas = _window(state.replica_history, now_s - HALVING_PERIOD_S, now_s)
    peak = max([current, *replicas])
    half = math.ceil(peak / 2)
    if half > floor:
        floor, why = half, f"at most halve per {HALVING_PERIOD_S:.0f} s (peak {peak})"
    return floor, why


def decide(signals: Signals, state: State, config: ScalerConfig, now_s: float) -> Decision:
    """Desired replicas for one ScaledObject from its signals and state; pure and deterministic.

    In order: each signal's ask (measured, then forecast one cold start ahead); at zero, the right-sized
    first step; while replicas warm, the queue at the time they are Ready; then the floors that keep a
    fleet from shrinking (missing data, latency near its SLO, stabilisation); and finally the keep-warm
    economics that decide whether an idle Deployment gives its last replica back.
    """
    cold = _cold_start(state, config)
    verdicts = _unconfigured(evaluate_signals(signals, config), signals)
    current = signals.current_replicas
    warming = state.warming_replicas or 0
    details: dict[str, Any] = {
        "cold_start_s": cold.seconds,
        "cold_start_samples": cold.samples,
        "cold_start_source": cold.source,
        "warming_replicas": state.warming_replicas,
        "replica_source": state.replica_source.value,
    }
    if state.notes:
        details["notes"] = dict(state.notes)
    warming_queue = warming > 0 and config.target_queue_per_replica is not None
    if config.predictive:
        # While replicas warm, the queue grows because nothing serves it yet, not because demand grows:
        # its trend is backlog, and the warming projection below (which knows when capacity arrives)
        # replaces the forecast for it.
        verdicts = tuple(
            _forecast(v, state.demand_history.get(v.signal), now_s, cold.seconds)
            if v.signal in DEMAND_SIGNALS and not (warming_queue and v.signal == SignalName.QUEUE)
            else v
            for v in verdicts
        )
    # The oldest warming pod tells how long until capacity starts arriving; without ages, half a cold
    # start is the expected remainder for pods started at random times.
    remaining_s = (
        max(0.0, cold.seconds - max(state.warming_ages_s)) if state.warming_ages_s else cold.seconds / 2
    )
    if warming_queue:
        new: list[SignalVerdict] = []
        for v in verdicts:
            if v.signal == SignalName.QUEUE:
                v, info = _warming_queue(v, state, now_s, remaining_s)
                if info:
                    details["warming"] = info
            new.append(v)
        verdicts = tuple(new)

    loading = [a for a in state.warming_ages_s if a < 2 * cold.seconds] if state.warming_ages_s else []
    if current and (loading or (warming > 0 and not state.warming_ages_s)):
        verdicts = tuple(_latency_waits(v, current) for v in verdicts)

    asks = [(v.desired_replicas, v.signal.value) for v in verdicts if v.desired_replicas is not None]
    missing = [v.signal.value for v in verdicts if v.status == Status.MISSING]
    guarded = any(v.status == Status.GUARD for v in verdicts)
    if missing:
        details["missing"] = missing
    unconfigured = [v.signal.value for v in verdicts if v.status == Status.UNCONFIGURED]
    if unconfigured:
        details["unconfigured"] = unconfigured

    def make(valid: bool, desired: int, reason: str, active: bool | None = None) -> Decision:
        if not config.scale_to_zero and valid:
            desired = max(desired, 1)
        return Decision(
            valid=valid,
            desired_replicas=desired,
            active=(valid and desired > 0) if active is None else active,
            reason=reason,
            signals=verdicts,
            current_replicas=current,
            ready_replicas=signals.ready_replicas,
            now_s=now_s,
            details=details,
        )

    if current == 0 and warming == 0:
        return _from_zero(signals, state, config, now_s, cold, asks, make, details)
    if current and signals.ready_replicas == 0 and not signals.unreadable_pods and not asks:
        # Pods exist but none is Ready yet (the first step from zero is loading): no pod can report
        # metrics, so every signal is missing, yet the demand waiting at zero is still known. Keep sizing
        # as from zero, never below the pods already starting, counting arrivals only until the first pod
        # is Ready (the first step already planned for the rest). Worked example: 3 pods loading for 40 of
        # 60 s, the gateway holds 180 requests arriving at 4/s, 22 per replica: ceil((180 + 4 x 20) / 22)
        # = 12. Without this the answer was no-data, which held 3 until the first pod was Ready.
        start = _from_zero(signals, state, config, now_s, cold, asks, make, details, remaining_s)
        if start.reason == Reason.FROM_ZERO:
            return make(True, max(current, start.desired_replicas), Reason.FROM_ZERO)

    if not asks and not guarded and missing and len(missing) == len(verdicts):
        return make(False, current or 0, f"{Reason.NO_DATA}: {', '.join(missing)} missing")

    desired, reason = max(asks, key=lambda a: a[0]) if asks else (0, Reason.IDLE.value)
    # Floors: neither missing data, nor unreadable pods, nor latency near its SLO may shrink the fleet.
    floor = current or 0
    if desired < floor:
        if missing or signals.unreadable_pods:
            return make(True, floor, Reason.HOLD_MISSING)
        if guarded:
            return make(True, floor, Reason.LATENCY_GUARD)
        stable, why = _stabilisation_floor(verdicts, state, floor, desired, now_s, cold.seconds)
        # Pods still loading are a scale-up less than a cold start old: no scale-down on top of it (it
        # would throw away the GPU time already spent loading them). Pods stuck loading for more than two
        # cold starts (unschedulable, crash-looping) no longer hold the fleet.
        recent = [a for a in state.warming_ages_s if a < 2 * cold.seconds]
        if recent or (warming > 0 and not state.warming_ages_s):
            stable, why = floor, f"{warming} replica(s) still warming from a recent scale-up"
        if stable > desired:
            details["stabilisation"] = why
            desired, reason = min(stable, floor), Reason.STABILISED.value

    # No demand now and at most one replica left to decide on: whether the last one stays warm is the
    # keep-warm economics' call, not the stabilisation's.
    if floor > 0 and desired <= 1 and all(a[0] == 0 for a in asks):
        return _idle(signals, state, config, now_s, cold, floor, make, details)
    return make(True, desired, reason)


MakeDecision = Callable[..., Decision]


def _from_zero(
    signals: Signals,
    state: State,
    config: ScalerConfig,
    now_s: float,
    cold: ColdStart,
    asks: list[tuple[int, str]],
    make: MakeDecision,
    details: dict[str, Any],
    horizon_s: float | None = None,
) -> Decision:
    """No pods: activate on demand and size the first step for the backlog plus one cold start of arrivals
    (``horizon_s`` instead of the cold start when pods are already loading).

    The demand waiting at zero is the ``activationQuery`` value when configured (a gateway's pending
    requests), else the backend's own queue (when something still reports it). Worked example: 24 requests
    waiting, arriving at 0.5/s, a 60 s cold start and 8 per replica: ceil((24 + 0.5 x 60) / 8) = 7 replicas
    now, instead of 1 now and 6 more a cold start later.
    """
    if config.activation_query is not None:
        backlog, history, source = state.activation_value, state.activation_history, "activationQuery"
    else:
        backlog, history = signals.queue_requests, state.demand_history.get(SignalName.QUEUE)
        source = "queue"
    if backlog is None or backlog <= config.activation_threshold:
        if config.activation_query is not None and backlog is None:
            details["activation"] = "activationQuery returned no data: treated as no demand at zero"
        if asks and max(a[0] for a in asks) > 0:
            # A signal still reports demand (e.g. tokens from a pod just deleted): follow it.
            desired, reason = max(asks, key=lambda a: a[0])
            return make(True, desired, reason)
        if state.replica_source == ReplicaSource.METRICS:
            # Zero pods is inferred from the absence of their series, which a Deployment whose pods are not
            # scraped (a missing PodMonitor, a wrong `deployment` key) looks like too: say so.
            details["at_zero"] = (
                "no series from this Deployment's pods, so it is taken to be at zero; if its pods are "
                "running, Prometheus is not scraping them (check the PodMonitor and the deployment key), "
                "and without the Kubernetes API or kube-state-metrics the scaler cannot tell"
            )
        return make(True, 0, Reason.AT_ZERO)
    rate = arrival_rate_per_s(history, now_s)
    horizon = cold.seconds if horizon_s is None else horizon_s
    arriving = rate * horizon
    target = config.target_queue_per_replica
    desired = max(1, ceil_ratio(backlog + arriving, target)) if target is not None else 1
    details["from_zero"] = {
        "demand": backlog,
        "demand_source": source,
        "arrival_per_s": rate,
        "arriving_during_cold_start": arriving,
        "arrival_horizon_s": horizon,
    }
    for ask, _ in asks:
        desired = max(desired, ask)
    return make(True, desired, Reason.FROM_ZERO)


def _idle(
    signals: Signals,
    state: State,
    config: ScalerConfig,
    now_s: float,
    cold: ColdStart,
    current: int,
    make: MakeDecision,
    details: dict[str, Any],
) -> Decision:
    """No demand at all: keep one replica warm until releasing it pays, then report inactive."""
    if not config.scale_to_zero:
        return make(True, 1, Reason.KEEP_WARM)
    histories = [state.demand_history[s] for s in DEMAND_SIGNALS if s in state.demand_history]
    idleness = measure_idleness(histories, now_s, _demand_busy(signals, state))
    release = decide_release(idleness, cold.seconds, config.min_idle_s)
    details["idle"] = {
        "idle_s": idleness.idle_s,
        "gaps_seen": len(idleness.gaps_s),
        "expected_idle_s": release.expected_idle_s,
        "penalty_s": release.penalty_s,
        "release": release.release,
        "why": release.why,
    }
    if release.release:
        return make(True, 0, Reason.RELEASE, active=False)
    return make(True, 1, Reason.KEEP_WARM)
