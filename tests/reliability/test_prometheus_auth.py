"""Authentication to Prometheus: basic auth over TLS with a custom CA (a real Prometheus started with
``--web.config.file``), and a bearer token from a file (a loopback reverse proxy that checks it). Secrets
never appear in logs, RPC error details or the scaler's metrics."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import bcrypt
import grpc
import pytest

from scaler.serve.server import ScalerThread
from scaler.sources.prometheus import PrometheusAuth
from tests.harness.exporter import FakeFleet, FakePod
from tests.harness.prometheus import PrometheusProcess
from tests.harness.scaler import loopback_scaler
from tests.reliability.certs import CA
from tests.reliability.support import HeaderCheckingProxy, SecuredPrometheus, wait_for

NS = "authns"
META = {
    "backend": "vllm",
    "deployment": "llama",
    "targetQueuePerReplica": "4",
    "predictive": "false",
    "scaleToZero": "false",
}
PASSWORD = "s3cret-Pa55word-7f1d"
TOKEN = "tok-9c2f81e0d7b44a4e8d1f"
ROTATED_TOKEN = "tok-rotated-52aa10c3e9"


@pytest.fixture(scope="module")
def pods(fleet: FakeFleet) -> Iterator[None]:
    # queue 2 x 6 = 12 -> 3 replicas
    names = [f"llama-5d4f8b7c9-{s}" for s in ("hhhhh", "bbbbb")]
    for n in names:
        fleet.add(FakePod(NS, n, waiting=6))
    yield
    for n in names:
        fleet.remove(NS, n)


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, fleet: FakeFleet, pods: None
) -> Iterator[SecuredPrometheus]:
    d = tmp_path_factory.mktemp("secured")
    ca = CA("prometheus-ca")
    cert, key = ca.issue("prometheus", server=True).write(d, "prom")
    ca_file = ca.write(d / "ca.crt")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = d / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  scaler: {hashed}\n"
    )
    prom = SecuredPrometheus(
        d / "prom",
        fleet.address,
        fleet.sd_file,
        web_config=web,
        ca_file=ca_file,
        user="scaler",
        password=PASSWORD,
    )
    prom.start()
    prom.wait_until(f'count(vllm:num_requests_waiting{{namespace="{NS}"}}) == 2', bool)
    yield prom
    prom.stop()


def _scaler(url: str, auth: PrometheusAuth) -> contextlib.AbstractContextManager[ScalerThread]:
    return loopback_scaler(url, auth=auth, query_timeout_s=2.0, history_step_s=5.0, staleness_s=60.0)


def _ask(
    address: str, keda_pb: tuple[ModuleType, ModuleType], name: str
) -> tuple[grpc.StatusCode, str, float]:
    pb, pb_grpc = keda_pb
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.ExternalScalerStub(ch)
        r = pb.ScaledObjectRef(name=name, namespace=NS, scalerMetadata=META)
        try:
            resp = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=r, metricName=""), timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", -1.0
        return grpc.StatusCode.OK, "", float(resp.metricValues[0].metricValueFloat)


def _metrics_text(scaler: ScalerThread) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{scaler.server.metrics_port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_basic_auth_over_tls_with_a_custom_ca(
    tmp_path: Path,
    secured: SecuredPrometheus,
    keda_pb: tuple[ModuleType, ModuleType],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    good = PrometheusAuth(
        basic_user="scaler", basic_password_file=str(password_file), ca_file=str(secured.ca_file)
    )
    with _scaler(secured.url, good) as s:
        assert _ask(s.address, keda_pb, "basic-so") == (grpc.StatusCode.OK, "", 3.0)
        text = _metrics_text(s)
    # the wrong password, or no CA: UNAVAILABLE naming the server, and no password anywhere
    wrong_file = tmp_path / "wrong"
    wrong_file.write_text("not-the-password")
    for auth, expect in (
        (
            PrometheusAuth(
                basic_user="scaler", basic_password_file=str(wrong_file), ca_file=str(secured.ca_file)
            ),
            "401",
        ),
        (
            PrometheusAuth(basic_user="scaler", basic_password_file=str(password_file)),
            "CERTIFICATE_VERIFY_FAILED",
        ),
        (PrometheusAuth(ca_file=str(secured.ca_file)), "401"),
    ):
        with _scaler(secured.url, auth) as s:
            code, details, _ = _ask(s.address, keda_pb, "basic-so")
            text += _metrics_text(s)
        assert code == grpc.StatusCode.UNAVAILABLE and expect in details, details
        assert secured.url.removeprefix("https://") in details
        assert PASSWORD not in details
    assert PASSWORD not in caplog.text and PASSWORD not in text


def test_bearer_token_from_a_file_and_its_rotation(
    tmp_path: Path,
    prometheus: PrometheusProcess,
    pods: None,
    keda_pb: tuple[ModuleType, ModuleType],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    prometheus.wait_until(f'count(vllm:num_requests_waiting{{namespace="{NS}"}}) == 2', bool)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proxy = HeaderCheckingProxy(prometheus.url, f"Bearer {TOKEN}")
    try:
        with _scaler(proxy.url, PrometheusAuth(bearer_token_file=str(token_file))) as s:
            assert _ask(s.address, keda_pb, "bearer-so") == (grpc.StatusCode.OK, "", 3.0)
            assert proxy.seen and set(proxy.seen) == {f"Bearer {TOKEN}"}
            assert proxy.refused == 0
            # The projected service-account token rotates: Prometheus' side accepts only the new one, and
            # the file now holds it. A running scaler carries it from the next refresh on, without a restart.
            entry = s.server.refresher.entries[(NS, "bearer-so", "llama")]
            proxy.expected = f"Bearer {ROTATED_TOKEN}"
            token_file.write_text(ROTATED_TOKEN + "\n")
            rotated_at = len(proxy.seen)
            wait_for(lambda: f"Bearer {ROTATED_TOKEN}" in proxy.seen[rotated_at:], 10)
            refreshed = entry.refreshed_at_s or 0.0
            wait_for(lambda: (entry.refreshed_at_s or 0.0) > refreshed and entry.error is None, 10)
            assert _ask(s.address, keda_pb, "bearer-so") == (grpc.StatusCode.OK, "", 3.0)
            text = _metrics_text(s)
    finally:
        proxy.close()
    assert TOKEN not in caplog.text and ROTATED_TOKEN not in caplog.text
    assert TOKEN not in text and ROTATED_TOKEN not in text


def test_cli_serve_logs_no_secret(
    tmp_path: Path, secured: SecuredPrometheus, keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    """A whole ``serve`` run with basic auth at debug level and reads for two ScaledObjects: stderr
    holds neither the password nor its base64 form. (Refused reads are checked for leaks in the test
    of basic auth above, through the log records and the metrics.)"""
    import base64

    from tests.harness.prometheus import free_port

    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    port, metrics = free_port(), free_port()
    args = [
        *(sys.executable, "-m", "scaler", "serve", "--grpc-port", str(port), "--metrics-port", str(metrics)),
        *("--bind-address", "127.0.0.1", "--prometheus-url", secured.url, "--kubernetes", "off"),
        *("--prometheus-basic-user", "scaler", "--prometheus-basic-password-file", str(password_file)),
        *("--prometheus-ca-file", str(secured.ca_file), "--log-level", "debug", "--rate-window", "10s"),
    ]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": ""})
    try:
        address = f"127.0.0.1:{port}"
        wait_for(lambda: _ask(address, keda_pb, "cli-so")[0] == grpc.StatusCode.OK, 30, interval_s=0.3)
        assert _ask(address, keda_pb, "cli-so")[2] == 3.0
        # a second ScaledObject: one more read logged at debug level
        assert _ask(address, keda_pb, "cli-so-2")[0] == grpc.StatusCode.OK
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    basic = base64.b64encode(f"scaler:{PASSWORD}".encode()).decode()
    assert "serving gRPC" in stderr, stderr
    assert PASSWORD not in stderr and basic not in stderr, stderr[-2000:]
