"""``explain`` for people: the lines an operator reads, rendered from the same Decision as the JSON."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scaler.core.config import parse_metadata
from scaler.core.decision import Reason, decide
from scaler.core.signals import Measure, SignalName, Signals
from scaler.core.state import ReplicaSource, Series, State
from scaler.describe import describe

NOW_S = 1_700_000_000.0
GATEWAY = 'sum(gateway_pending{namespace="ml"})'
SLO = {
    "backend": "vllm",
    "deployment": "llama",
    "latencySloSeconds": "1",
    "latencyMetric": "ttft",
    "coldStartSeconds": "60",
    "activationQuery": GATEWAY,
}


def series(values: list[float], step_s: float = 15.0) -> Series:
    n = len(values)
    return Series(tuple(NOW_S - (n - 1 - i) * step_s for i in range(n)), tuple(values))


def lines(text: str) -> dict[str, str]:
    """The first line of each section, by its label."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        label, sep, rest = line.partition(":")
        if sep and not line.startswith(" ") and label not in out:
            out[label] = rest.strip()
    return out


def test_from_zero() -> None:
    history = series([2.0 * i for i in range(13)], step_s=5.0)  # the gateway grows 0.4/s
    state = State(activation_value=24.0, activation_history=history, replica_source=ReplicaSource.KUBERNETES)
    d = decide(Signals(0, 0), state, parse_metadata(SLO), NOW_S)
    text = describe(d, ["ScaledObject: ml/llama"])
    got = lines(text)
    assert text.startswith("ScaledObject: ml/llama\n")
    assert got["Decision"] == "1 replica(s), active: demand at zero: the first step"
    assert got["Replicas"] == "0 current, 0 Ready, unknown warming (at-zero; from kubernetes)"
    assert got["Projection"].startswith(
        "0.16 replicas in 75 s: 0.4 requests/s arriving"
    )  # (0.4 x 0.18 + 24 x 0.18 / 75) / 0.8
    assert got["Projection"].endswith("24 waiting (from activationQuery)")
    assert "the prior (not yet seen under steady load)" in text
    # the default batch limit, never seen full: 128 / (200 x 8 ms + 128 x 0.18 s) = 5.19 requests/s
    assert d.capacity is not None and d.capacity.batch_requests_per_s == pytest.approx(128 / 24.64)
    assert "batch limit 256 sequences: at most 5.19 requests/s keep the mean batch at 0.5 of it" in text
    assert got["Cold start"] == "60 s (prior)"


def test_warming() -> None:
    signals = Signals(8, 6, requests_per_s=10.0, waiting_requests=0.0, running_requests=60.0, latency_s=0.4)
    state = State(warming_replicas=2, warming_ages_s=(20.0, 20.0), replica_source=ReplicaSource.KUBERNETES)
    d = decide(signals, state, parse_metadata(SLO), NOW_S)
    got = lines(describe(d))
    assert got["Decision"] == "8 replica(s), active: replicas still loading from a scale-up"
    assert got["Replicas"] == "8 current, 6 Ready, 2 warming (warming; from kubernetes)"
    assert got["Floors"].startswith("loading 8: 2 replica(s) still loading from a scale-up")


def test_hold_missing_data() -> None:
    metadata = {**SLO, "targetQueuePerReplica": "8", "targetTokensPerSecondPerReplica": "1000"}
    signals = Signals(4, 4, queue_requests=None, tokens_per_s=100.0, latency_s=0.3)
    d = decide(
        signals, State(history={Measure.TOKENS: series([100.0] * 240)}), parse_metadata(metadata), NOW_S
    )
    text = describe(d)
    got = lines(text)
    assert got["Decision"] == "4 replica(s), active: missing data: holding, never shrinking"
    assert "  queue    -              8 requests per replica   asks -    missing  no series" in text
    assert got["Missing"] == "queue (held, never read as zero)"


def test_keep_warm() -> None:
    # a burst 30 s ago on an otherwise idle Deployment: the last replica stays until a cold start has passed
    signals = Signals(
        1,
        1,
        requests_per_s=0.0,
        waiting_requests=0.0,
        running_requests=0.0,
        no_traffic=frozenset({SignalName.LATENCY}),
    )
    state = State(history={Measure.REQUESTS: series([0.0] * 200 + [5.0, 0.0, 0.0])})
    d = decide(signals, state, parse_metadata(SLO), NOW_S)
    got = lines(describe(d))
    assert got["Decision"] == "1 replica(s), active: keep-warm: releasing does not pay yet"
    assert got["Idle"] == "30 s; keep warm: idle 30 s < cold start 60 s"


def test_no_decision_says_what_keda_does() -> None:
    d = decide(Signals(3, 3), State(), parse_metadata({**SLO, "latencyMetric": "e2e"}), NOW_S)
    got = lines(describe(d))
    assert got["Decision"].startswith("no decision (no usable data: KEDA's fallback applies)")


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_reads_as_words(reason: Reason) -> None:
    """A decision for any reason renders (a reason missing from the table raised KeyError in explain)."""
    d = replace(decide(Signals(1, 1, requests_per_s=1.0), State(), parse_metadata(SLO), NOW_S), reason=reason)
    got = lines(describe(d))["Decision"]
    assert got.startswith("1 replica(s), active: ") and len(got) > len("1 replica(s), active: ") + 10


def test_short_burst() -> None:
    """Two past bursts of 7 requests/s (1.58 replicas at the prior's 4.44 each), 30 s each; 7/s again."""
    calm, spike = [1.0] * 20, [7.0] * 2
    state = State(history={Measure.REQUESTS: series(calm + spike + calm + spike + calm)})
    signals = Signals(1, 1, queue_requests=0.0, requests_per_s=7.0)
    got = lines(describe(decide(signals, state, parse_metadata(SLO), NOW_S)))
    assert got["Decision"] == "1 replica(s), active: a burst too short for a cold start: no scale-up"
    assert got["Burst"] == (
        "asked 2, held at 1: the demand went above 1 replica(s) in 2 past burst(s), the longest 30 s, each "
        "over before a replica asked at its start was Ready (75 s); this one has lasted 0 s"
    )
