"""The scaler's own metrics tell the same story as the Decision; forget drops every series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from scaler.core.config import parse_metadata
from scaler.core.decision import decide
from scaler.core.signals import Measure, Signals
from scaler.core.state import ReplicaSource, Series, State
from scaler.serve.telemetry import Telemetry

KEY = ("ml", "llama-so", "llama")
LABELS = dict(zip(("namespace", "scaledobject", "deployment"), KEY, strict=True))
CONFIG = parse_metadata(
    {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "8", "targetGpuUtilization": "80"}
)


def _decision(queue: float | None) -> tuple[Telemetry, CollectorRegistry]:
    registry = CollectorRegistry()
    t = Telemetry(registry)
    signals = Signals(current_replicas=3, ready_replicas=2, queue_requests=queue, gpu_util_percent=90.0)
    state = State(
        warming_replicas=1,
        warming_ages_s=(10.0,),
        replica_source=ReplicaSource.KUBERNETES,
        cold_start_samples_s=(40.0, 50.0, 60.0),
        history={Measure.QUEUE: Series((0.0, 15.0, 30.0, 45.0), (20.0, 22.0, 24.0, 26.0))},
    )
    t.record(KEY, decide(signals, state, CONFIG, 45.0), 45.0)
    return t, registry


def test_record_publishes_the_decision() -> None:
    _, r = _decision(queue=26.0)
    get = r.get_sample_value
    # queue ceil(26 / 8) = 4; gpu ceil(2 x 90 / 80) = 3: the queue target asks 4
    assert get("llm_scaler_desired_replicas", LABELS) == 4
    assert get("llm_scaler_signal_value", {**LABELS, "signal": "queue"}) == 26.0
    assert get("llm_scaler_signal_desired_replicas", {**LABELS, "signal": "gpu"}) == 3
    assert get("llm_scaler_signal_missing", {**LABELS, "signal": "queue"}) == 0
    assert get("llm_scaler_active", LABELS) == 1
    assert get("llm_scaler_warming_replicas", LABELS) == 1
    assert get("llm_scaler_cold_start_seconds", LABELS) == 58.0  # p90 of 40, 50, 60
    assert get("llm_scaler_cold_start_samples", LABELS) == 3
    assert get("llm_scaler_replica_source_info", {**LABELS, "source": "kubernetes"}) == 1
    assert get("llm_scaler_decisions_total", {**LABELS, "reason": "queue"}) == 1
    # the capacity estimate (the prior here), and each floor under the answer
    assert get("llm_scaler_capacity_requests_per_second", LABELS) is not None
    assert get("llm_scaler_floor_replicas", {**LABELS, "floor": "loading"}) is None  # 4 > 3: nothing held


def test_a_missing_signal_has_no_value_series_not_a_zero() -> None:
    _, r = _decision(queue=None)
    assert r.get_sample_value("llm_scaler_signal_value", {**LABELS, "signal": "queue"}) is None
    assert r.get_sample_value("llm_scaler_signal_missing", {**LABELS, "signal": "queue"}) == 1


def test_forget_drops_every_series_of_the_scaledobject() -> None:
    t, r = _decision(queue=26.0)
    t.forget(KEY)
    leftover = [
        s.name for metric in r.collect() for s in metric.samples if s.labels.get("scaledobject") == "llama-so"
    ]
    assert leftover == []
