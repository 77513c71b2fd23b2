"""``explain`` for people: a Decision as the few lines an operator reads first, like ``kubectl describe``.

It reads the same typed ``Decision`` as ``explain -o json``, the metrics and the logs, so they never disagree:
every number here is a field of the Decision.
"""

from __future__ import annotations

from collections.abc import Iterable

from scaler.core.capacity import BATCH_SHARE
from scaler.core.decision import Decision, FloorKind, Phase, Reason, SignalVerdict, Status
from scaler.core.signals import SignalName

_UNITS = {SignalName.QUEUE: "requests", SignalName.TOKENS: "/s", SignalName.GPU: "%", SignalName.LATENCY: "s"}
_REASONS = {
    Reason.DEMAND: "the projected demand",
    Reason.QUEUE: "the queue target",
    Reason.TOKENS: "the tokens target",
    Reason.GPU: "the GPU utilisation target",
    Reason.LATENCY: "latency above its SLO",
    Reason.HEADROOM: "warm headroom for bursts",
    Reason.SHORT_BURST: "a burst too short for a cold start: no scale-up",
    Reason.KV_CACHE: "KV cache nearly full: no scale-down",
    Reason.DEMONSTRATED: "no scale-down far beyond the load a minute showed",
    Reason.KEEP_WARM: "keep-warm: releasing does not pay yet",
    Reason.HOLD_MISSING: "missing data: holding, never shrinking",
    Reason.LATENCY_GUARD: "latency near its SLO: no scale-down",
    Reason.LOADING: "replicas still loading from a scale-up",
    Reason.FROM_ZERO: "demand at zero: the first step",
    Reason.AT_ZERO: "at zero, no demand waiting",
    Reason.RELEASE: "idle long enough: the last replica goes",
    Reason.NO_DATA: "no usable data: KEDA's fallback applies",
}


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}"


def _signal_line(v: SignalVerdict) -> str:
    unit = _UNITS[v.signal]
    value = f"{_num(v.value)} {unit}".strip() if v.value is not None else "-"
    target = f"{_num(v.target)} {unit}".strip()
    if v.signal == SignalName.LATENCY:
        target = f"SLO {target}"
    elif v.signal != SignalName.GPU:
        target = f"{target} per replica"
    ask = str(v.desired_replicas) if v.desired_replicas is not None else "-"
    note = f"  {v.note}" if v.note else ""
    return f"  {v.signal.value:<8} {value:<14} {target:<24} asks {ask:<4} {v.status.value}{note}"


def describe(decision: Decision, header: Iterable[str] = ()) -> str:
    """The decision in lines a person reads: the answer and its reason first, then every number behind it."""
    d = decision
    lines = list(header)
    state = "active" if d.active else "inactive"
    if not d.valid:
        answer = f"no decision ({_REASONS[d.reason]}); KEDA sees UNAVAILABLE and its fallback applies"
    else:
        answer = f"{d.desired_replicas} replica(s), {state}: {_REASONS[d.reason]}"
    lines.append(f"Decision:    {answer}" + (f" ({d.reason_note})" if d.reason_note else ""))
    warming = d.warming_replicas if d.warming_replicas is not None else "unknown"
    lines.append(
        f"Replicas:    {_num(d.current_replicas)} current, {_num(d.ready_replicas)} Ready, {warming} warming "
        f"({d.phase.value}; from {d.replica_source.value})"
    )
    if d.signals:
        lines.append("Signals:")
        lines.extend(_signal_line(v) for v in d.signals)
    if d.capacity is not None:
        c = d.capacity
        learned = (
            f"learned from {c.cost.busy_s / 60:.0f} min of load"
            if c.cost.source.value == "learned"
            else "the prior (not yet seen under steady load)"
        )
        mix = "" if c.mix_measured else ", prior mix"
        lines.append(
            f"Capacity:    {_num(c.requests_per_s_per_replica)} requests/s per replica at utilisation "
            f"{c.utilisation_target:.2f}: {_num(c.work_s_per_request)} s of work per request "
            f"({c.prompt_tokens_per_request:.0f} prompt + {c.output_tokens_per_request:.0f} output "
            f"tokens{mix})"
        )
        lines.append(
            f"             costs {learned}: step {c.cost.step_base_s * 1e3:.1f} ms, "
            f"{c.cost.decode_s_per_token * 1e3:.2f} ms per output token, "
            f"{c.cost.prefill_s_per_token * 1e6:.0f} us per prompt token" + (f"; {c.note}" if c.note else "")
        )
        shown = (
            f"; a past minute showed {_num(c.demonstrated_per_s)}/s on {c.demonstrated_on} replica(s)"
            if c.demonstrated_per_s is not None
            else ""
        )
        lines.append(
            f"             batch limit {c.batch_limit:.0f} sequences: at most "
            f"{_num(c.batch_requests_per_s)} requests/s keep the mean batch at {BATCH_SHARE:g} of it{shown}"
        )
    if d.projection is not None:
        p = d.projection
        lines.append(
            f"Projection:  {p.replicas:.2f} replicas in {p.horizon_s:.0f} s: "
            f"{_num(p.arrivals_per_s)} requests/s arriving (forecast {_num(p.forecast_per_s)}), "
            f"{p.backlog_requests:.0f} waiting (from {p.source})"
        )
    if d.burst is not None:
        lines.append(f"Burst:       {d.burst.why}")
    if d.headroom is not None:
        lines.append(f"Headroom:    {d.headroom.why}")
    holding = [f for f in d.floors if f.kind != FloorKind.HEADROOM]
    if holding:
        lines.append("Floors:      " + "; ".join(f"{f.kind.value} {f.replicas}: {f.why}" for f in holding))
    cold = d.cold_start
    seen = ", ".join(f"{x:.0f}" for x in cold.samples_s)
    lines.append(
        f"Cold start:  {cold.seconds:.0f} s ({cold.source}"
        + (f", p90 of {cold.samples} clean start-up(s): {seen} s" if cold.samples else "")
        + ")"
    )
    if d.idle is not None:
        idle = f"{d.idle.idle_s:.0f} s" if d.idle.idle_s is not None else "unknown"
        verdict = "release" if d.idle.release else "keep warm"
        lines.append(f"Idle:        {idle}; {verdict}: {d.idle.why}")
    missing = [v.signal.value for v in d.signals if v.status == Status.MISSING]
    if missing and d.phase != Phase.AT_ZERO:
        lines.append(f"Missing:     {', '.join(missing)} (held, never read as zero)")
    if d.notes:
        lines.append("Notes:")
        lines.extend(f"  {key}: {text}" for key, text in d.notes)
    return "\n".join(lines) + "\n"
