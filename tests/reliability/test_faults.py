"""Faults with real servers: Prometheus killed, slow, returning partial data; the Kubernetes API unreachable.

Each module-level scaler talks to a Prometheus of this module's own (``private_prometheus``), so killing
it disturbs no other test. Times: 1 s scrapes, 0.5 s refreshes, a 6 s staleness bound, 1 s query timeout.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from scaler.serve.server import ScalerThread, ServeOptions
from tests.harness.exporter import FakeFleet, FakePod
from tests.harness.prometheus import PrometheusProcess, free_port
from tests.reliability.support import DelayProxy, private_prometheus, wait_for

NS = "faults"
RATE_WINDOW = "10s"
REFRESH_S = 0.5
STALENESS_S = 6.0
QUERY_TIMEOUT_S = 1.0
META = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "4",
    "targetTokensPerSecondPerReplica": "400",
    "scaleToZero": "false",
}


def _options(url: str, **changes: Any) -> ServeOptions:
    base: dict[str, Any] = {
        "grpc_port": 0,
        "metrics_port": 0,
        "bind_address": "127.0.0.1",
        "prometheus_url": url,
        "refresh_s": REFRESH_S,
        "staleness_s": STALENESS_S,
        "query_timeout_s": QUERY_TIMEOUT_S,
        "rate_window": RATE_WINDOW,
        "history_step_s": 1.0,
    }
    return ServeOptions(**{**base, **changes})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeFleet, PrometheusProcess]]:
    with private_prometheus(tmp_path_factory.mktemp("faults")) as (fleet, prom):
        # llama: queue 2 x (3 + 5) = 16 -> 16 / 4 = 4 replicas; tokens 2 x 400 = 800/s -> 2
        for suffix in ("hhhhh", "bbbbb"):
            fleet.add(
                FakePod(
                    NS,
                    f"llama-5d4f8b7c9-{suffix}",
                    waiting=3,
                    running=5,
                    generation_tokens_per_s=400,
                    requests_per_s=2,
                )
            )
        prom.wait_until(
            f'count(count_over_time(vllm:generation_tokens_total{{namespace="{NS}"}}[{RATE_WINDOW}]) >= 10)'
            " == 2",
            bool,
        )
        yield fleet, prom


class Keda:
    """KEDA's calls on one channel, with a deadline on each."""

    def __init__(self, address: str, keda_pb: tuple[ModuleType, ModuleType]) -> None:
        self.pb, pb_grpc = keda_pb
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.ExternalScalerStub(self.channel)

    def ref(self, name: str, metadata: dict[str, str] | None = None, namespace: str = NS) -> Any:
        return self.pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=metadata or META)

    def metrics(self, name: str, timeout_s: float = 5.0, metadata: dict[str, str] | None = None) -> float:
        req = self.pb.GetMetricsRequest(scaledObjectRef=self.ref(name, metadata), metricName="")
        return float(self.stub.GetMetrics(req, timeout=timeout_s).metricValues[0].metricValueFloat)

    def active(self, name: str, timeout_s: float = 5.0, metadata: dict[str, str] | None = None) -> bool:
        return bool(self.stub.IsActive(self.ref(name, metadata), timeout=timeout_s).result)

    def code(self, fn: Any) -> tuple[grpc.StatusCode, str]:
        try:
            fn()
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""

    def close(self) -> None:
        self.channel.close()


def _gauge(scaler: ScalerThread, name: str, so: str, deployment: str = "llama", **extra: str) -> float | None:
    labels = {"namespace": NS, "scaledobject": so, "deployment": deployment, **extra}
    return scaler.registry.get_sample_value(f"llm_scaler_{name}", labels)


def test_prometheus_killed_holds_then_unavailable_then_recovers(
    world: tuple[FakeFleet, PrometheusProcess], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    _, prom = world
    scaler = ScalerThread(_options(prom.url)).start()
    keda = Keda(scaler.address, keda_pb)
    try:
        assert keda.metrics("kill-so") == 4.0
        assert keda.active("kill-so") is True
        entry = scaler.server.refresher.entries[(NS, "kill-so", "llama")]
        assert prom.proc is not None
        prom.proc.kill()  # SIGKILL: no goodbye, connections refused from now on
        prom.proc.wait(timeout=10)
        killed = time.monotonic()
        # Within the staleness bound: the last good answer, never a scale-down nor a deactivation. Counted
        # are the answers given while a refresh had already failed (the entry holds its error): the ones
        # this test is about, however few a loaded machine lets the loop make.
        held_failing = 0
        while time.monotonic() - killed < STALENESS_S - 2 * REFRESH_S - 0.5:
            failing = entry.error is not None
            assert keda.metrics("kill-so") == 4.0
            assert keda.active("kill-so") is True
            assert _gauge(scaler, "active", "kill-so") == 1.0
            held_failing += failing
            time.sleep(0.2)
        assert held_failing >= 1
        assert entry.error is not None and f"127.0.0.1:{prom.port}" in entry.error, entry.error
        # Past it: UNAVAILABLE (KEDA's fallback), saying why.
        wait_for(lambda: keda.code(lambda: keda.metrics("kill-so"))[0] != grpc.StatusCode.OK, STALENESS_S)
        first_unavailable_s = time.monotonic() - killed
        assert first_unavailable_s >= STALENESS_S - 2 * REFRESH_S
        for call in (lambda: keda.metrics("kill-so"), lambda: keda.active("kill-so")):
            code, details = keda.code(call)
            assert code == grpc.StatusCode.UNAVAILABLE
            assert "staleness bound" in details and f"127.0.0.1:{prom.port}" in details, details
        # The process still serves: health, and bad metadata still gets its own answer.
        code, details = keda.code(lambda: keda.active("kill-so", metadata={**META, "backend": "tgi"}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "'backend'" in details
        # Prometheus returns (same port, same data): normal answers by the refresh after the one in flight
        # when it became ready (counted in refreshes, not seconds: the cadence is the contract, and a
        # loaded machine stretches seconds). One more is allowed for the poll that sees it.
        prom.stop()
        prom.start()
        refresher = scaler.server.refresher
        ready_at = refresher.refreshes
        wait_for(lambda: keda.code(lambda: keda.metrics("kill-so"))[0] == grpc.StatusCode.OK, 10)
        assert refresher.refreshes - ready_at <= 3, (ready_at, refresher.refreshes)
        assert keda.metrics("kill-so") == 4.0
        assert keda.active("kill-so") is True
    finally:
        keda.close()
        scaler.stop()
        if prom.proc is None:
            prom.start()


def test_slow_prometheus_never_holds_an_rpc_past_its_deadline(
    world: tuple[FakeFleet, PrometheusProcess], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    _, prom = world
    proxy = DelayProxy(prom.port)
    scaler = ScalerThread(_options(proxy.url)).start()
    keda = Keda(scaler.address, keda_pb)
    try:
        assert keda.metrics("slow-so") == 4.0
        proxy.delay_s = 5 * QUERY_TIMEOUT_S
        slowed = time.monotonic()
        # A known ScaledObject answers from the snapshot, refresh after refresh: each call's 1 s deadline is
        # the assertion (a call that waited on a query, 1 s to time out, would miss it: DEADLINE_EXCEEDED).
        answered = 0
        while time.monotonic() - slowed < 3.0:
            assert keda.metrics("slow-so", timeout_s=1.0) == 4.0
            assert keda.active("slow-so", timeout_s=1.0) is True
            answered += 1
            time.sleep(0.1)
        assert answered >= 1
        entry = scaler.server.refresher.entries[(NS, "slow-so", "llama")]
        wait_for(lambda: entry.error is not None, 5)
        assert "timed out" in (entry.error or ""), entry.error
        # A new one must read Prometheus first: UNAVAILABLE after one query timeout, not a hang. The proxy
        # answers after 5 s, the call's deadline is 5 s: only the scaler's own 1 s query timeout gives
        # UNAVAILABLE naming the timeout (a hang would end in DEADLINE_EXCEEDED).
        code, details = keda.code(lambda: keda.metrics("new-so", timeout_s=5.0))
        assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
        assert "timed out" in details and f"127.0.0.1:{proxy.port}" in details, details
        proxy.delay_s = 0.0
        wait_for(lambda: keda.code(lambda: keda.metrics("new-so"))[0] == grpc.StatusCode.OK, 10)
        assert keda.metrics("new-so") == 4.0
    finally:
        keda.close()
        scaler.stop()
        proxy.close()


@pytest.fixture(scope="module")
def partial(
    world: tuple[FakeFleet, PrometheusProcess], keda_pb: tuple[ModuleType, ModuleType]
) -> Iterator[tuple[ScalerThread, Keda]]:
    _, prom = world
    scaler = ScalerThread(_options(prom.url, staleness_s=60.0)).start()
    keda = Keda(scaler.address, keda_pb)
    yield scaler, keda
    keda.close()
    scaler.stop()


def _add_and_wait(fleet: FakeFleet, prom: PrometheusProcess, pods: list[FakePod], deployment: str) -> None:
    for p in pods:
        fleet.add(p)
    prom.wait_until(
        f'count(count_over_time(vllm:num_requests_waiting{{namespace="{NS}", pod=~"{deployment}-.*"}}[10s])'
        f" >= 3) == {len(pods)}",
        bool,
    )


def test_nan_from_one_pod_never_shrinks_the_fleet(
    world: tuple[FakeFleet, PrometheusProcess], partial: tuple[ScalerThread, Keda]
) -> None:
    """A pod reporting NaN for its queue: its load is unknown, so the fleet holds (like an unreadable pod)."""
    fleet, prom = world
    scaler, keda = partial
    meta = {**META, "deployment": "nanq", "targetTokensPerSecondPerReplica": "1000"}
    pods = [
        FakePod(NS, "nanq-5d4f8b7c9-hhhhh", waiting=math.nan, running=math.nan),
        FakePod(NS, "nanq-5d4f8b7c9-bbbbb", waiting=0, running=0),
        FakePod(NS, "nanq-5d4f8b7c9-ccccc", waiting=0, running=0),
    ]
    _add_and_wait(fleet, prom, pods, "nanq")
    try:
        value = keda.metrics("nanq-so", metadata=meta)
        decision = scaler.server.refresher.entries[(NS, "nanq-so", "nanq")].decision
        assert decision is not None
        # The NaN pod is not summed as zero, and three replicas stay: no scale-down on unknown load.
        assert value == 3.0, decision.to_dict()
        assert keda.active("nanq-so", metadata=meta) is True
    finally:
        for p in pods:
            fleet.remove(p.namespace, p.name)


def test_counter_reset_is_a_restart_not_a_spike(
    world: tuple[FakeFleet, PrometheusProcess], partial: tuple[ScalerThread, Keda]
) -> None:
    """An engine restart resets its token counter: rate() treats the drop as a reset, tokens/s stays put."""
    fleet, prom = world
    scaler, keda = partial
    # predictive off: a pod that just started ramps 0 -> 600 tokens/s, which the forecast would extrapolate
    meta = {
        "backend": "vllm",
        "deployment": "reset",
        "targetTokensPerSecondPerReplica": "400",
        "predictive": "false",
        "scaleToZero": "false",
    }
    pod = FakePod(NS, "reset-5d4f8b7c9-hhhhh", generation_tokens_per_s=600, requests_per_s=1)
    _add_and_wait(fleet, prom, [pod], "reset")
    prom.wait_until(
        f'count_over_time(vllm:generation_tokens_total{{pod="{pod.name}"}}[{RATE_WINDOW}]) >= 10', bool
    )
    try:
        assert keda.metrics("reset-so", metadata=meta) == 2.0  # ceil(600 / 400), robust to rate() skew
        pod._base.clear()  # the counters drop from ~1000 + 600 t to 1000 + small: a reset
        pod._base.update(gen=0.0, prompt=0.0, req=0.0)
        pod._t0 = time.time()
        seen: list[float] = []
        deadline = time.monotonic() + float(RATE_WINDOW.rstrip("s")) + 2.0  # the reset leaves the window
        while time.monotonic() < deadline:
            seen.append(_signal(scaler, "reset-so", "reset", "tokens"))
            assert keda.metrics("reset-so", metadata=meta) <= 3.0
            time.sleep(0.5)
        # rate() across a reset: no negative rate and no spike of the counter's old total
        assert min(seen) >= 0.0 and max(seen) < 900.0, seen
        # ...and the counter did reset inside the window the scaler read (else the above proves nothing)
        resets = prom.query(f'resets(vllm:generation_tokens_total{{pod="{pod.name}"}}[1m])')
        assert resets and float(resets[0]["value"][1]) >= 1, resets
    finally:
        fleet.remove(pod.namespace, pod.name)


def _signal(scaler: ScalerThread, so: str, deployment: str, signal: str) -> float:
    value = _gauge(scaler, "signal_value", so, deployment, signal=signal)
    assert value is not None, f"no {signal} value for {so}"
    return value


def test_series_that_stop_drop_the_pod_and_keep_answering(
    world: tuple[FakeFleet, PrometheusProcess], partial: tuple[ScalerThread, Keda]
) -> None:
    """A deleted pod: its target goes, its series go stale, it stops counting; answers never stop."""
    fleet, prom = world
    scaler, keda = partial
    meta = {**META, "deployment": "gone", "targetTokensPerSecondPerReplica": "1000"}
    pods = [FakePod(NS, f"gone-5d4f8b7c9-{s}", waiting=4, running=0) for s in ("hhhhh", "bbbbb", "ccccc")]
    _add_and_wait(fleet, prom, pods, "gone")
    try:
        assert keda.metrics("gone-so", metadata=meta) == 3.0  # 12 / 4
        assert _gauge(scaler, "current_replicas", "gone-so", "gone") == 3.0
        fleet.remove(NS, pods[0].name)
        codes: set[grpc.StatusCode] = set()

        def dropped() -> bool:
            codes.add(keda.code(lambda: keda.metrics("gone-so", metadata=meta))[0])
            return _gauge(scaler, "current_replicas", "gone-so", "gone") == 2.0

        wait_for(dropped, 30, interval_s=0.25)
        assert codes == {grpc.StatusCode.OK}
        assert keda.metrics("gone-so", metadata=meta) == 2.0  # 8 / 4 from the two pods left
    finally:
        for p in pods[1:]:
            fleet.remove(p.namespace, p.name)


def _hanging_server() -> Any:
    """A TCP listener that accepts and never answers (a black-holed API server)."""
    import socket

    return socket.create_server(("127.0.0.1", 0), backlog=64)


def test_kubernetes_api_unreachable_decisions_continue(
    tmp_path: Path, world: tuple[FakeFleet, PrometheusProcess], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    _, prom = world
    hang = _hanging_server()
    results: dict[str, Any] = {}
    try:
        for label, port in (("refused", free_port()), ("hanging", hang.getsockname()[1])):
            kubeconfig = tmp_path / f"{label}.kubeconfig"
            kubeconfig.write_text(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                        "users": [{"name": "u", "user": {"token": "kube-secret-token"}}],
                        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                        "current-context": "x",
                    }
                )
            )
            scaler = ScalerThread(_options(prom.url, kubernetes=str(kubeconfig))).start()
            keda = Keda(scaler.address, keda_pb)
            try:
                # Within the RPC's deadline: a hanging API server must not hold the decision past it.
                value = keda.metrics(f"kube-{label}", timeout_s=20)
                assert value == 4.0
                assert keda.active(f"kube-{label}") is True
                decision = scaler.server.refresher.entries[(NS, f"kube-{label}", "llama")].decision
                assert decision is not None
                doc = decision.to_dict()
                text = json.dumps(doc)
                assert "Kubernetes API unreadable" in text, doc
                results[label] = text
                assert _gauge(scaler, "replica_source_info", f"kube-{label}", source="metrics") == 1.0
            finally:
                keda.close()
                scaler.stop()
        # refused: the connection fails at once; hanging: the read is cut by the client's timeout (not the
        # RPC's deadline), which is what bounds it. No wall-clock bound here: timings belong to `make bench`.
        assert "NewConnectionError" in results["refused"], results["refused"]
        assert "ReadTimeoutError" in results["hanging"], results["hanging"]
    finally:
        hang.close()
    # explain says the same
    kubeconfig = tmp_path / "refused.kubeconfig"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaler",
            "explain",
            "-o",
            "json",
            "--prometheus-url",
            prom.url,
            "--rate-window",
            RATE_WINDOW,
            "--kubernetes",
            str(kubeconfig),
            "--namespace",
            NS,
            "--name",
            "kube-so",
            "--metadata",
            *(f"{k}={v}" for k, v in META.items()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "Kubernetes API unreadable" in out.stdout
    assert json.loads(out.stdout)["desired_replicas"] == 4
    assert "kube-secret-token" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "this: is: not: a kubeconfig",
        "- a list\n- not a mapping",
    ],
)
def test_unloadable_kubeconfig_refuses_to_start(tmp_path: Path, text: str) -> None:
    """An explicit kubeconfig that does not load is an operator error: one line, exit 1, no traceback."""
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text(text)
    out = subprocess.run(
        [
            *(sys.executable, "-m", "scaler", "serve", "--grpc-port", "0", "--metrics-port", "0"),
            *("--prometheus-url", "http://127.0.0.1:1", "--kubernetes", str(bad)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    assert out.returncode == 1, out
    assert out.stderr.startswith("error: no Kubernetes configuration"), out.stderr
    assert "Traceback" not in out.stderr
