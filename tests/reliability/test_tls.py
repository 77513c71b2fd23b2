"""TLS and mutual TLS on the gRPC port with real certificates, as KEDA's caCert/tlsClientCert/tlsClientKey.

The scaler runs in-process (ScalerThread) on an in-memory source: these tests are about the transport.
One test runs ``python -m scaler serve`` as a subprocess with the contract flags.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scaler.serve.server import ScalerThread, ServeOptions
from tests.harness.prometheus import free_port
from tests.reliability.certs import CA, Issued, serial_of
from tests.reliability.support import MemorySource, wait_for

META = {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "4", "scaleToZero": "false"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca, other = CA("scaler-test-ca"), CA("some-other-ca")
    server = ca.issue("llm-keda-scaler", server=True)
    client = ca.issue("keda-operator", server=False)
    stranger = other.issue("keda-operator", server=False)
    return {
        "dir": d,
        "ca": ca,
        "other": other,
        "ca_file": ca.write(d / "ca.crt"),
        "server": server,
        "client": client,
        "stranger": stranger,
    }


def _start(tmp: Path, pki: dict[str, Any], mtls: bool) -> tuple[ScalerThread, Path, Path]:
    cert, key = pki["server"].write(tmp, "tls")
    options = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url="http://127.0.0.1:1",
        refresh_s=0.5,
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(pki["ca_file"]) if mtls else None,
    )
    return ScalerThread(options, source_for=lambda _url: MemorySource()).start(), cert, key


@pytest.fixture
def mtls_scaler(tmp_path: Path, pki: dict[str, Any]) -> Iterator[tuple[ScalerThread, Path, Path]]:
    s = _start(tmp_path, pki, mtls=True)
    yield s
    s[0].stop()


def _channel(address: str, ca_pem: bytes | None, client: Issued | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    # A private subchannel pool: every channel makes its own connection, so each test sees a handshake.
    return grpc.secure_channel(address, creds, options=[("grpc.use_local_subchannel_pool", 1)])


def _health(ch: grpc.Channel) -> int:
    return int(
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    )


def _refused(ch: grpc.Channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        _health(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    return info.value


def _peer_serial(port: int, ca: CA, client: Issued | None, tmp: Path) -> int:
    """The serial of the certificate the server presents to a brand-new TLS connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca.pem.decode())
    ctx.set_alpn_protocols(["h2"])
    if client is not None:
        cert, key = client.write(tmp, "peer-client")
        ctx.load_cert_chain(str(cert), str(key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(der)


def test_tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext(
    tmp_path: Path, pki: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    scaler, _, _ = _start(tmp_path, pki, mtls=False)
    try:
        with _channel(scaler.address, pki["ca"].pem, None) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
            stub = keda_pb[1].ExternalScalerStub(ch)
            r = keda_pb[0].ScaledObjectRef(name="so", namespace="tls", scalerMetadata=META)
            # queue 8 / 4 per replica = 2 replicas
            value = stub.GetMetrics(keda_pb[0].GetMetricsRequest(scaledObjectRef=r, metricName="llm-llama"))
            assert value.metricValues[0].metricValue == 2
        with grpc.insecure_channel(scaler.address) as plain:
            _refused(plain)
        # a client that trusts another CA does not accept our server
        with _channel(scaler.address, pki["other"].pem, None) as wrong:
            _refused(wrong)
    finally:
        scaler.stop()


def test_mtls_accepts_the_keda_client_and_refuses_others(
    mtls_scaler: tuple[ScalerThread, Path, Path], pki: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    scaler = mtls_scaler[0]
    # KEDA's TriggerAuthentication: caCert + tlsClientCert + tlsClientKey
    with _channel(scaler.address, pki["ca"].pem, pki["client"]) as keda:
        assert _health(keda) == health_pb2.HealthCheckResponse.SERVING
        r = keda_pb[0].ScaledObjectRef(name="so", namespace="tls", scalerMetadata=META)
        assert keda_pb[1].ExternalScalerStub(keda).IsActive(r, timeout=5).result is True
    with _channel(scaler.address, pki["ca"].pem, None) as anonymous:
        _refused(anonymous)
    with _channel(scaler.address, pki["ca"].pem, pki["stranger"]) as stranger:
        _refused(stranger)
    with grpc.insecure_channel(scaler.address) as plain:
        _refused(plain)


def test_rotation_is_seen_by_new_connections_without_restart(
    tmp_path: Path, mtls_scaler: tuple[ScalerThread, Path, Path], pki: dict[str, Any]
) -> None:
    scaler, cert, _key = mtls_scaler
    port = scaler.server.grpc_port
    first = _peer_serial(port, pki["ca"], pki["client"], tmp_path)
    assert first == pki["server"].serial
    rotated = pki["ca"].issue("llm-keda-scaler", server=True)
    assert rotated.serial != first
    # cert-manager writes the new pair in place
    rotated.write(cert.parent, cert.stem)
    assert _peer_serial(port, pki["ca"], pki["client"], tmp_path) == rotated.serial
    with _channel(scaler.address, pki["ca"].pem, pki["client"]) as keda:
        assert _health(keda) == health_pb2.HealthCheckResponse.SERVING


def test_half_written_rotation_keeps_the_old_certificate(
    tmp_path: Path, mtls_scaler: tuple[ScalerThread, Path, Path], pki: dict[str, Any]
) -> None:
    scaler, cert, key = mtls_scaler
    port = scaler.server.grpc_port
    cert.write_bytes(pki["server"].cert_pem[:100])  # truncated PEM, as mid-write
    assert _peer_serial(port, pki["ca"], pki["client"], tmp_path) == pki["server"].serial
    # a certificate whose key does not match (cert rotated, key not yet): also kept out
    fresh = pki["ca"].issue("llm-keda-scaler", server=True)
    cert.write_bytes(fresh.cert_pem)
    assert _peer_serial(port, pki["ca"], pki["client"], tmp_path) == pki["server"].serial
    key.write_bytes(fresh.key_pem)
    assert _peer_serial(port, pki["ca"], pki["client"], tmp_path) == fresh.serial


def test_client_ca_rotation_changes_who_is_let_in(
    tmp_path: Path, pki: dict[str, Any], keda_pb: tuple[ModuleType, ModuleType]
) -> None:
    ca_file = tmp_path / "client-ca.crt"
    ca_file.write_bytes(pki["ca"].pem)
    cert, key = pki["server"].write(tmp_path, "tls")
    options = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url="http://127.0.0.1:1",
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(ca_file),
    )
    scaler = ScalerThread(options, source_for=lambda _url: MemorySource()).start()
    try:
        with _channel(scaler.address, pki["ca"].pem, pki["stranger"]) as ch:
            _refused(ch)
        ca_file.write_bytes(pki["other"].pem)
        with _channel(scaler.address, pki["ca"].pem, pki["stranger"]) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
        with _channel(scaler.address, pki["ca"].pem, pki["client"]) as ch:
            _refused(ch)
    finally:
        scaler.stop()


def _serve_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "scaler", "serve", *args]


def test_cli_serve_with_mtls_as_a_subprocess(tmp_path: Path, pki: dict[str, Any]) -> None:
    cert, key = pki["server"].write(tmp_path, "tls")
    port, metrics = free_port(), free_port()
    args = [
        "--grpc-port",
        str(port),
        "--metrics-port",
        str(metrics),
        "--bind-address",
        "127.0.0.1",
        "--prometheus-url",
        "http://127.0.0.1:1",
        "--kubernetes",
        "off",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--tls-client-ca",
        str(pki["ca_file"]),
    ]
    env = {**os.environ, "PYTHONWARNINGS": ""}
    proc = subprocess.Popen(_serve_cmd(args), stderr=subprocess.PIPE, text=True, env=env)
    try:
        address = f"127.0.0.1:{port}"

        def serving() -> bool:
            with _channel(address, pki["ca"].pem, pki["client"]) as ch:
                try:
                    return _health(ch) == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    return False

        wait_for(serving, timeout_s=30, interval_s=0.2)
        with _channel(address, pki["ca"].pem, None) as anonymous:
            _refused(anonymous)
        with grpc.insecure_channel(address) as plain:
            _refused(plain)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert f"port {port}" in stderr  # the serving log line
    assert pki["server"].key_pem.decode().splitlines()[1] not in stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tls-cert", "CERT"], "--tls-cert and --tls-key must be given together"),
        (["--tls-cert", "CERT", "--tls-key", "/nonexistent/key.pem"], "--tls-key: no such file"),
        (["--tls-client-ca", "CERT"], "--tls-client-ca needs --tls-cert"),
    ],
)
def test_cli_refuses_incomplete_tls_flags(
    tmp_path: Path, pki: dict[str, Any], extra: list[str], message: str
) -> None:
    cert, _ = pki["server"].write(tmp_path, "tls")
    args = [str(cert) if a == "CERT" else a for a in extra]
    out = subprocess.run(
        _serve_cmd(["--grpc-port", "0", "--metrics-port", "0", "--kubernetes", "off", *args]),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    assert out.returncode == 2, out
    assert message in out.stderr, out.stderr
    # refused before serving anything (the flags are checked before the server is built)
    assert "serving gRPC" not in out.stderr and "Traceback" not in out.stderr, out.stderr
