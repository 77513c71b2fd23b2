"""The scaler pod's readiness/liveness check (deploy/docker/grpc_health_check.py, run by an exec probe)
against the real scaler: plaintext, TLS with a client CA (mTLS, as deployed), and the failures a
probe must report. Certificates are real, issued like deploy/cert-manager/certificates.yaml."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2

from scaler.serve.server import SERVICE_NAME, ScalerThread, ServeOptions
from tests.deploy.support import DEPLOY

SCRIPT = DEPLOY / "docker" / "grpc_health_check.py"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    directory: Path,
    stem: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usages: list[x509.ObjectIdentifier],
) -> tuple[Path, Path]:
    """A leaf for `localhost` with the given extended key usages, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca[1], hashes.SHA256())
    )
    crt, pem = directory / f"{stem}.crt", directory / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(_pem_key(key))
    return crt, pem


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe-certs")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("llm-keda-scaler-ca"))
        .issuer_name(_name("llm-keda-scaler-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (d / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca = (ca_cert, key)
    both = _issue(d, "scaler", ca, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    server_only = _issue(d, "server-only", ca, [ExtendedKeyUsageOID.SERVER_AUTH])
    return {
        "ca": d / "ca.crt",
        "cert": both[0],
        "key": both[1],
        "server_only_cert": server_only[0],
        "server_only_key": server_only[1],
    }


def _serve(**tls: str | None) -> ScalerThread:
    return ScalerThread(ServeOptions(grpc_port=0, metrics_port=-1, bind_address="127.0.0.1", **tls)).start()  # type: ignore[arg-type]


def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the check as the kubelet's exec probe would: the pod's environment, nothing else."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCALER_")}
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def mtls_scaler(certs: dict[str, Path]) -> Iterator[ScalerThread]:
    s = _serve(tls_cert=str(certs["cert"]), tls_key=str(certs["key"]), tls_client_ca=str(certs["ca"]))
    yield s
    s.stop()


def _env(port: int, cert: Path, key: Path, ca: Path) -> dict[str, str]:
    # The Deployment's variables (deploy/scaler/deployment.yaml), pointing at this test's files.
    return {
        "SCALER_GRPC_PORT": str(port),
        "SCALER_TLS_CERT": str(cert),
        "SCALER_TLS_KEY": str(key),
        "SCALER_TLS_CLIENT_CA": str(ca),
    }


def test_serving_under_mutual_tls(mtls_scaler: ScalerThread, certs: dict[str, Path]) -> None:
    result = probe(_env(mtls_scaler.server.grpc_port, certs["cert"], certs["key"], certs["ca"]))
    assert (result.returncode, result.stdout.strip()) == (0, f"{SERVICE_NAME}: SERVING"), result.stderr


def test_not_serving_fails_the_probe(mtls_scaler: ScalerThread, certs: dict[str, Path]) -> None:
    def set_status(status: int) -> object:
        return mtls_scaler.call(lambda: mtls_scaler.server.health.set(SERVICE_NAME, status)).result(
            timeout=10
        )

    set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        result = probe(_env(mtls_scaler.server.grpc_port, certs["cert"], certs["key"], certs["ca"]))
    finally:
        set_status(health_pb2.HealthCheckResponse.SERVING)
    assert (result.returncode, result.stdout.strip()) == (1, f"{SERVICE_NAME}: NOT_SERVING")


def test_a_certificate_without_client_auth_cannot_probe_under_mtls(certs: dict[str, Path]) -> None:
    """Why deploy/cert-manager issues the scaler's certificate with both server and client auth."""
    s = _serve(
        tls_cert=str(certs["server_only_cert"]),
        tls_key=str(certs["server_only_key"]),
        tls_client_ca=str(certs["ca"]),
    )
    try:
        result = probe(
            _env(s.server.grpc_port, certs["server_only_cert"], certs["server_only_key"], certs["ca"])
        )
    finally:
        s.stop()
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "health check failed" in result.stderr


def test_plaintext_scaler(tmp_path: Path) -> None:
    s = _serve()
    try:
        result = probe({"SCALER_GRPC_PORT": str(s.server.grpc_port)})
    finally:
        s.stop()
    assert result.returncode == 0, result.stderr


def test_nothing_listening_fails_the_probe(certs: dict[str, Path]) -> None:
    s = _serve()
    port = s.server.grpc_port
    s.stop()  # the port is closed now: what the kubelet sees from a crashed scaler
    result = probe({"SCALER_GRPC_PORT": str(port)})
    assert result.returncode == 2
    assert "health check failed" in result.stderr
