"""The scaler's own metrics tell the same story as the Decision; forget drops every series."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scaler.core.config import parse_metadata
from scaler.core.decision import Floor, FloorKind, decide
from scaler.core.headroom import Headroom
from scaler.core.projection import Projection
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


def test_a_scrape_shows_the_latest_decision_and_counts_every_one() -> None:
    registry = CollectorRegistry()
    t = Telemetry(registry)
    state = State(replica_source=ReplicaSource.KUBERNETES, warming_replicas=1, warming_ages_s=(10.0,))
    loaded = Signals(current_replicas=3, ready_replicas=2, queue_requests=40.0, gpu_util_percent=90.0)
    decisions = [decide(loaded, state, CONFIG, now) for now in (45.0, 47.0)]
    for d in decisions:
        t.record(KEY, d, d.now_s)
    get = registry.get_sample_value
    assert get("llm_scaler_signal_value", {**LABELS, "signal": "queue"}) == 40.0
    assert get("llm_scaler_warming_replicas", LABELS) == 1
    # the queue goes missing and the warming pod is Ready: those series go, the rest follow the decision
    decisions.append(decide(replace(loaded, queue_requests=None), State(), CONFIG, 49.0))
    t.record(KEY, decisions[-1], 49.0)
    assert get("llm_scaler_signal_value", {**LABELS, "signal": "queue"}) is None
    assert get("llm_scaler_signal_missing", {**LABELS, "signal": "queue"}) == 1
    assert get("llm_scaler_warming_replicas", LABELS) is None
    assert get("llm_scaler_replica_source_info", {**LABELS, "source": "kubernetes"}) is None
    assert get("llm_scaler_last_refresh_timestamp_seconds", LABELS) == 49.0
    counted = {
        s.labels["reason"]: s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == "llm_scaler_decisions_total"
    }
    assert counted == Counter(d.reason.split(":")[0] for d in decisions), counted
    assert decisions[0].reason != decisions[-1].reason  # both reasons counted, not just the last


def test_the_exposition_is_what_prometheus_client_would_write() -> None:
    # The metrics port writes the per-ScaledObject series itself (prometheus_client's writer took ~1 s for
    # 2,000 ScaledObjects): parsed back, they are the same samples as the library's text of the same
    # collector, label escaping included, without the counters' _created series.
    registry = CollectorRegistry()
    t = Telemetry(registry)
    state = State(replica_source=ReplicaSource.KUBERNETES, warming_replicas=1, warming_ages_s=(10.0,))
    loaded = Signals(current_replicas=3, ready_replicas=2, queue_requests=40.0, gpu_util_percent=90.0)
    for key, signals in (
        (KEY, loaded),
        (("ml", 'odd "so"\\ with\nnewline', "llama"), loaded),
        (("ml", "zero-so", "llama"), Signals(current_replicas=0, ready_replicas=0)),
        (("ml", "gone-so", "llama"), replace(loaded, queue_requests=None)),
    ):
        for now in (45.0, 47.0):
            t.record(key, decide(signals, state, CONFIG, now), now)
    t.rpc_duration.labels("GetMetrics").observe(0.001)

    def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    ours = samples(t.exposition().decode())
    theirs = samples(generate_latest(registry).decode())
    assert ours == theirs
    assert len({s for s in ours if s[0] == "llm_scaler_desired_replicas"}) == 4
    assert ("llm_scaler_rpc_duration_seconds_count", (("method", "GetMetrics"),), 1.0) in ours


def test_the_cores_capacity_projection_headroom_and_floors_are_served() -> None:
    # The decision core's own numbers reach the scrape (both writers): capacity, the projection's two
    # forecasts, the headroom, and one series per floor kind, equal to the Decision's fields.
    registry = CollectorRegistry()
    t = Telemetry(registry)
    decision = decide(
        Signals(current_replicas=3, ready_replicas=2, queue_requests=26.0, gpu_util_percent=90.0),
        State(replica_source=ReplicaSource.KUBERNETES, warming_replicas=1, warming_ages_s=(10.0,)),
        CONFIG,
        45.0,
    )
    assert decision.capacity is not None
    projection = Projection(
        horizon_s=90.0, arrivals_per_s=3.0, forecast_per_s=4.5, backlog_requests=6.0, source="engine",
        replicas=2.25,
    )  # fmt: skip
    floors = (
        Floor(FloorKind.HEADROOM, 3, "bursts"),
        Floor(FloorKind.KEEP_WARM, 2, "idle is cheap"),
        Floor(FloorKind.KEEP_WARM, 1, "the last of a kind is served"),
    )
    headroom = Headroom(
        replicas=3, target_attainment=0.99, requests=100.0, misses_reactive=5.0, misses_at_floor=0.0,
        windows=4, why="bursts",
    )  # fmt: skip
    decision = replace(decision, projection=projection, headroom=headroom, floors=floors)
    t.record(KEY, decision, 45.0)

    def served(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in LABELS))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.labels.get("scaledobject") == KEY[1]
        }

    for text in (t.exposition().decode(), generate_latest(registry).decode()):
        got = served(text)
        capacity = decision.capacity.requests_per_s_per_replica
        assert got[("llm_scaler_capacity_requests_per_second", ())] == capacity
        assert (
            got[("llm_scaler_forecast_value", (("signal", "arrivals"),))]
            == decision.projection.forecast_per_s
        )
        assert got[("llm_scaler_forecast_value", (("signal", "replicas"),))] == decision.projection.replicas
        assert got[("llm_scaler_headroom_replicas", ())] == 3
        floor_series = {k[1]: v for k, v in got.items() if k[0] == "llm_scaler_floor_replicas"}
        assert floor_series == {(("floor", "headroom"),): 3, (("floor", "keep-warm"),): 1}
    t.forget(KEY)
    assert served(t.exposition().decode()) == {}
