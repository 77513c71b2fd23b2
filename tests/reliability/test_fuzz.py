"""Property-based fuzzing of the trigger metadata and malformed gRPC requests.

Every input gets a decision or INVALID_ARGUMENT naming a key (never another status, never a crash);
oversized maps and values are refused; hostile PromQL never reaches Prometheus (its own query log says
what it was asked). Hypothesis runs derandomized with no example database, so CI sees the same cases.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.core.config import (
    ALLOWED_KEYS,
    MAX_MESSAGE_CHARS,
    MAX_METADATA_KEYS,
    MAX_VALUE_CHARS,
    TARGET_KEYS,
    TARGETS_KEY,
    ConfigError,
    ScalerConfig,
)
from scaler.core.decision import Decision, decide
from scaler.core.signals import Signals
from scaler.core.state import State
from scaler.core.target import target_from_ref
from scaler.serve.server import ScalerThread, ServeOptions
from tests.harness.prometheus import PrometheusProcess

PURE = settings(
    max_examples=2000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OVER_GRPC = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

NS = "fuzz"
# Markers that must never appear in anything Prometheus is asked.
MARKER = "pwn1337"
VICTIM = "victimns"
HOSTILE = [
    f'llama"}} or vector(1) #{MARKER}',
    f'x"}}[5m]) or on() vector({MARKER})',
    f'{MARKER}"}}|{{__name__=~".+"}}',
    f'") or count({{__name__=~".+"}}) #{MARKER}',
    f'{MARKER}\\"}}\n',
    f"\x00{MARKER}",
    f"{MARKER}`",
    f"{MARKER}' or '1'='1",
    f"http://127.0.0.1:1/api/v1/query?query=up#{MARKER}",
    f'http://127.0.0.1:1"{MARKER}',
]
ACTIVATION = [
    f'sum(pending{{namespace="{NS}"}})',
    f'sum(pending{{namespace="{VICTIM}"}})',
    'sum(pending{namespace=~".+"})',
    f'pending{{namespace="{NS}"}} or pending{{namespace="{VICTIM}"}}',
    f'sum(pending{{namespace="{NS}", namespace="{VICTIM}"}})',
    "sum(pending)",
    f'label_replace(pending{{namespace="{NS}"}}, "namespace", "{VICTIM}", "", "")',
    f'pending{{namespace="{NS}"}} offset 1h',
    f'count({{__name__=~".+",namespace="{NS}"}}) #{MARKER}',
]
NUMBERS = [
    "0",
    "1",
    "4",
    "0.5",
    "-1",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "1e-320",
    "99999999999",
    " 7 ",
    "",
    "0x10",
    "1_000",
    "½",
]
VALID = {
    "backend": ["vllm", "triton", "VLLM", "tgi", ""],
    "deployment": ["llama", "llama-8b", "a.b", "Llama", "-x", "x" * 254, ""],
    "model": ["meta-llama/Llama-3.1-8B-Instruct", "ensemble", "", "a b"],
    "serverAddress": ["http://127.0.0.1:1", "https://prom:9090/", "ftp://x", "http://", "http://h:99999"],
    "latencyMetric": ["e2e", "ttft", "p99"],
    "latencyQuantile": ["0.99", "0.5", "1", "0", "nan"],
    "predictive": ["true", "false", "True", "yes", ""],
    "scaleToZero": ["true", "false", "0"],
    "coldStartSeconds": ["60", "0", "3600", "3601", "nan"],
    "minIdleSeconds": ["0", "30", "-1"],
    "activationQuery": ACTIVATION,
    "activationThreshold": ["0", "1.5", "-1"],
    "scalerAddress": ["scaler.keda:9090"],
    "enableTLS": ["true"],
}
KNOWN = sorted({*ALLOWED_KEYS, *VALID})


def _value_for(key: str) -> st.SearchStrategy[str]:
    pool = list(VALID.get(key, [])) + NUMBERS + HOSTILE
    return st.one_of(
        st.sampled_from(pool),
        st.text(max_size=40),
        st.text(alphabet="{}[]()\"'`\\=~!|,#;\n 0123456789.-e", max_size=60),
    )


GOOD = {
    "model": ["meta-llama/Llama-3.1-8B-Instruct", "ensemble"],
    "targetQueuePerReplica": ["4", "0.5", "16"],
    "targetTokensPerSecondPerReplica": ["400", "2500"],
    "targetGpuUtilization": ["50", "100"],
    "latencySloSeconds": ["5", "0.3"],
    "latencyMetric": ["e2e", "ttft"],
    "latencyQuantile": ["0.99", "0.5"],
    "predictive": ["true", "false"],
    "scaleToZero": ["true", "false"],
    "coldStartSeconds": ["60", "1", "3600"],
    "minIdleSeconds": ["0", "300"],
    "activationQuery": [f'sum(pending{{namespace="{NS}"}})'],
    "scalerAddress": ["scaler.keda:9090"],
}


@st.composite
def metadata(draw: st.DrawFn, allow_server: bool = True) -> dict[str, str]:
    """Half: a valid trigger with at most one key spoiled. Half: any keys with any values."""
    keys = [k for k in KNOWN if allow_server or k != "serverAddress"]
    if draw(st.booleans()):
        # scaleToZero "true" (the default, or drawn) needs an activationQuery (also drawn) or is refused
        out = {
            "backend": draw(st.sampled_from(["vllm", "triton"])),
            "deployment": "llama",
            "scaleToZero": "false",
        }
        for key in draw(st.lists(st.sampled_from(sorted(GOOD)), unique=True, max_size=5)):
            out[key] = draw(st.sampled_from(GOOD[key]))
        out.setdefault(draw(st.sampled_from(TARGET_KEYS)), draw(st.sampled_from(["4", "50", "0.5"])))
        if "latencyMetric" in out or "latencyQuantile" in out:
            out.setdefault("latencySloSeconds", "5")
        if draw(st.integers(0, 2)) == 0:
            spoiled = draw(st.sampled_from(keys))
            out[spoiled] = draw(_value_for(spoiled))
        return out
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=8))
    out = {k: draw(_value_for(k)) for k in chosen}
    for extra in draw(st.lists(st.text(min_size=1, max_size=20), max_size=2)):
        out[extra] = draw(_value_for(extra))
    return out


NAMES = st.one_of(st.just("so"), st.text(max_size=12), st.just("x" * 254))
# A valid namespace other than NS is a ScaledObject's own and may be queried; it must not be VICTIM, which
# test_hostile_metadata_never_reaches_prometheus checks never appears in a matcher (whether the fuzz drew
# VICTIM as a valid namespace depended on hypothesis' draws, which any new metadata key shifts).
NAMESPACES = st.one_of(
    st.just(NS), st.sampled_from(["", "Fuzz", 'fuzz"}', "a" * 64, "elsewhere"]), st.text(max_size=10)
)


def _named_keys(meta: dict[str, str]) -> set[str]:
    """Keys an error may name: the map's own keys (as sent, or cut to 64 characters), or the fields."""
    return {
        *meta,
        *(k[:64] for k in meta),
        "scalerMetadata",
        "namespace",
        "name",
        "backend",
        "deployment",
        "activationQuery",  # named when scale to zero has none
        TARGETS_KEY,
    }


def _check_error(exc: ConfigError, meta: dict[str, str]) -> None:
    """Every problem names a key the ref has (or a required one it lacks), on one bounded line."""
    assert exc.problems and all(p.key in _named_keys(meta) and p.message for p in exc.problems), (
        exc.problems,
        meta,
    )
    message = str(exc)
    assert message.startswith("metadata key '") and "\n" not in message, message
    assert len(message) <= MAX_MESSAGE_CHARS, message
    if not re.search(r"; and \d+ more", message):  # nothing cut: every key is named in the message
        for p in exc.problems:
            assert not p.key.isprintable() or f"key '{p.key}': " in message, (p, message)


LOADED = Signals(
    current_replicas=2,
    ready_replicas=2,
    queue_requests=9.0,
    tokens_per_s=700.0,
    gpu_util_percent=80.0,
    latency_s=2.0,
    # the engine's own numbers, which an SLO-only trigger sizes from (no engine metrics: no-data)
    running_requests=5.0,
    waiting_requests=4.0,
    requests_per_s=3.0,
    prompt_tokens_per_s=400.0,
    generation_tokens_per_s=300.0,
    step_s=0.03,
)


def _asks(config: ScalerConfig, s: Signals) -> list[int]:
    """What each configured target asks for under ``s``, by the README's table (the decision is the
    largest ask, so it is never below any of these). Latency asks only once misses persist over windows
    of history (decision.py), which a stateless check has not got: it asks nothing here."""
    assert s.ready_replicas is not None

    def ceil(x: float) -> int:
        return math.ceil(x - 1e-9)

    asks = []
    if config.target_queue_per_replica is not None and s.queue_requests is not None:
        asks.append(ceil(s.queue_requests / config.target_queue_per_replica))
    if config.target_tokens_per_s_per_replica is not None and s.tokens_per_s is not None:
        asks.append(ceil(s.tokens_per_s / config.target_tokens_per_s_per_replica))
    if config.target_gpu_util_percent is not None and s.gpu_util_percent is not None:
        asks.append(ceil(s.ready_replicas * s.gpu_util_percent / config.target_gpu_util_percent))
    return asks


def _check_decision(decision: Decision, signals: Signals, config: ScalerConfig) -> None:
    if decision.valid:
        # KEDA reads IsActive and the HPA reads the value: they must not disagree about zero
        assert decision.active == (decision.desired_replicas > 0), decision.to_dict()
        if not config.scale_to_zero:
            assert decision.desired_replicas >= 1, decision.to_dict()
    if signals is LOADED:
        assert decision.valid and decision.desired_replicas >= max(_asks(config, signals), default=0), (
            _asks(config, signals),
            decision.to_dict(),
        )
    if signals.current_replicas and (signals.unreadable_pods or signals.queue_requests is None):
        # missing data never shrinks the fleet
        assert not decision.valid or decision.desired_replicas >= signals.current_replicas, decision.to_dict()


@PURE
@given(namespace=NAMESPACES, name=NAMES, meta=metadata())
def test_every_metadata_gets_a_decision_or_an_error_naming_a_key(
    namespace: str, name: str, meta: dict[str, str]
) -> None:
    try:
        target = target_from_ref(namespace, name, meta)
    except ConfigError as exc:
        _check_error(exc, meta)
        return
    config = target.config
    assert config.has_any_target()
    for signals in (
        LOADED,
        Signals(current_replicas=0, ready_replicas=0),
        Signals(current_replicas=3, ready_replicas=1, unreadable_pods=2),
    ):
        _check_decision(decide(signals, State(), config, 1_700_000_000.0), signals, config)


def test_oversized_maps_and_values_are_refused() -> None:
    base = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "4", "scaleToZero": "false"}
    big = {**base, **{f"k{i}": "1" for i in range(MAX_METADATA_KEYS)}}
    with pytest.raises(ConfigError) as info:
        target_from_ref(NS, "so", big)
    assert info.value.key == "scalerMetadata" and f"at most {MAX_METADATA_KEYS}" in info.value.message
    with pytest.raises(ConfigError) as info:
        target_from_ref(NS, "so", {**base, "model": "m" * (MAX_VALUE_CHARS + 1)})
    assert info.value.key == "model" and f"at most {MAX_VALUE_CHARS}" in info.value.message
    with pytest.raises(ConfigError) as info:
        target_from_ref(NS, "so", {**base, "k" * 10_000: "1"})
    assert info.value.key == "k" * 64  # the key is named, cut to a readable length
    with pytest.raises(ConfigError) as info:
        long_query = " + ".join([f'sum(x{{namespace="{NS}"}})'] * 60)  # 1,439 characters, valid PromQL
        target_from_ref(NS, "so", {**base, "activationQuery": long_query})
    assert info.value.key == "activationQuery" and "at most 1024" in info.value.message


# -- over gRPC, against the session's real Prometheus ------------------------------------------------


@pytest.fixture(scope="module")
def scaler(prometheus: PrometheusProcess) -> Iterator[ScalerThread]:
    options = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url=prometheus.url,
        refresh_s=1.0,
        query_timeout_s=2.0,
        history_step_s=5.0,
        rate_window="10s",
    )
    s = ScalerThread(options).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stub(scaler: ScalerThread, keda_pb: tuple[ModuleType, ModuleType]) -> Iterator[Any]:
    # grpc's default 4 MB message limit is the real cap on a map; the scaler's own caps are far below it.
    with grpc.insecure_channel(scaler.address) as ch:
        yield keda_pb[1].ExternalScalerStub(ch)


def _status(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def _expected_status(
    namespace: str, meta: dict[str, str], name: str = "fuzz-so"
) -> tuple[grpc.StatusCode, str]:
    """What the service must answer: the parser's own error, word for word, or a decision."""
    try:
        target_from_ref(namespace, name, meta)
    except ConfigError as exc:
        _check_error(exc, meta)
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    return grpc.StatusCode.OK, ""


def test_fuzzed_metadata_over_grpc(stub: Any, keda_pb: tuple[ModuleType, ModuleType]) -> None:
    pb = keda_pb[0]
    outcomes: Counter[str] = Counter()

    @OVER_GRPC
    @given(namespace=st.one_of(st.just(NS), NAMESPACES), meta=metadata(allow_server=False))
    def one(namespace: str, meta: dict[str, str]) -> None:
        r = pb.ScaledObjectRef(name="fuzz-so", namespace=namespace, scalerMetadata=meta)
        expected = _expected_status(namespace, meta)
        for call in (
            lambda: stub.GetMetricSpec(r, timeout=10),
            lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r, metricName=""), timeout=10),
            lambda: stub.IsActive(r, timeout=10),
        ):
            code, details = _status(call)
            outcomes[code.name] += 1
            # a valid map may still have no data yet (UNAVAILABLE: the fleet is not there), never another code
            if expected[0] == grpc.StatusCode.OK and code == grpc.StatusCode.UNAVAILABLE:
                continue
            assert (code, details) == expected, (code, details, meta)

    one()
    # the fuzz reached both outcomes often, so the paths past validation ran too
    assert outcomes["OK"] > 20 and outcomes["INVALID_ARGUMENT"] > 20, outcomes


def test_hostile_metadata_never_reaches_prometheus(
    prometheus: PrometheusProcess, stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    pb = keda_pb[0]
    base = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "4", "scaleToZero": "false"}
    for key in (
        "deployment",
        "model",
        "backend",
        "latencyMetric",
        "activationQuery",
        "serverAddress",
        "bogus",
    ):
        for value in (*HOSTILE, *ACTIVATION):
            meta = {**base, key: value}
            if key == "activationQuery":
                meta["activationThreshold"] = "0"
            r = pb.ScaledObjectRef(name="hostile-so", namespace=NS, scalerMetadata=meta)
            code, details = _status(lambda r=r: stub.IsActive(r, timeout=10))
            # refused with the parser's own message, or (a valid map) answered
            if code != grpc.StatusCode.UNAVAILABLE:
                assert (code, details) == _expected_status(NS, meta, "hostile-so"), (code, details, meta)
    for namespace in (VICTIM + '"} or vector(1)', f"{NS}|{VICTIM}", ".+"):
        r = pb.ScaledObjectRef(name="hostile-so", namespace=namespace, scalerMetadata=base)
        assert _status(lambda r=r: stub.IsActive(r, timeout=10))[0] == grpc.StatusCode.INVALID_ARGUMENT
    # the one valid activationQuery did reach Prometheus, confined to the namespace: the log is live
    seen = prometheus.queries_seen()
    assert any(f'pending{{namespace="{NS}"}}' in q for q in seen), (
        "the query log must show the scaler's queries"
    )
    for q in seen:
        assert MARKER not in q, q
        # another namespace may appear as a string (label_replace's replacement), never in a matcher
        assert re.search(rf'namespace\s*(=|=~|!=|!~)\s*"[^"]*{VICTIM}', q) is None, q
        assert '__name__=~".+"' not in q and 'namespace=~".+"' not in q, q


# -- malformed requests ----------------------------------------------------------------------------


def test_empty_name_or_namespace_and_unknown_metric_names(
    stub: Any, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    pb = keda_pb[0]
    meta = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "4", "scaleToZero": "false"}
    cases = [
        (pb.ScaledObjectRef(name="", namespace=NS, scalerMetadata=meta), "'name'"),
        (pb.ScaledObjectRef(name="so", namespace="", scalerMetadata=meta), "'namespace'"),
        (pb.ScaledObjectRef(), "'namespace'"),
        (pb.ScaledObjectRef(name="so", namespace=NS), "'backend'"),
    ]
    for r, named in cases:
        for call in (lambda r=r: stub.IsActive(r, timeout=5), lambda r=r: stub.GetMetricSpec(r, timeout=5)):
            code, details = _status(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and named in details, (code, details)
    good = pb.ScaledObjectRef(name="so", namespace=NS, scalerMetadata=meta)
    for asked in ("cpu", "s0-llm-other", "llm-llama-x", "x" * 10_000, "s-", "\x00"):
        code, details = _status(
            lambda asked=asked: stub.GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=good, metricName=asked), timeout=5
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert "metricName" in details and "'llm-llama'" in details and len(details) < 400, details
    code, details = _status(lambda: stub.GetMetrics(pb.GetMetricsRequest(), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'namespace'" in details


def test_bytes_that_are_not_a_message_get_a_clear_error(
    scaler: ScalerThread, caplog: pytest.LogCaptureFixture
) -> None:
    identity = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    corrupt = (b"\xff\xff\xff\xff", b"\x0a\x05ab", bytes(range(256)))
    with grpc.insecure_channel(scaler.address) as ch:
        for method, message in (
            ("IsActive", "ScaledObjectRef"),
            ("GetMetrics", "GetMetricsRequest"),
            ("GetMetricSpec", "ScaledObjectRef"),
        ):
            call = ch.unary_unary(f"/externalscaler.ExternalScaler/{method}", **identity)
            for raw in corrupt:
                with pytest.raises(grpc.RpcError) as info:
                    call(raw, timeout=5)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
                assert f"not a valid externalscaler.{message} message" in (info.value.details() or "")
            # well-formed bytes with unknown fields decode to an empty message: the missing field is named
            with pytest.raises(grpc.RpcError) as info:
                call(b"\x78\x01", timeout=5)  # field 15 (unknown), varint 1
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "metadata key 'namespace'" in (info.value.details() or ""), info.value.details()
        stream = ch.unary_stream("/externalscaler.ExternalScaler/StreamIsActive", **identity)
        with pytest.raises(grpc.RpcError) as info:
            next(stream(corrupt[0], timeout=5))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        nope = ch.unary_unary("/externalscaler.ExternalScaler/Nope", **identity)
        with pytest.raises(grpc.RpcError) as info:
            nope(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # the server still answers normally afterwards, and logged no traceback per bad request
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
