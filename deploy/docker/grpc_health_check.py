"""Exec probe for the scaler pod: grpc.health.v1.Health/Check over the same TLS as KEDA uses.

The kubelet's built-in ``grpc:`` probe dials plaintext and cannot present a client certificate, while
port 9090 speaks TLS and, under mutual TLS, demands one; so the pod runs this instead. Exit 0 only when
the scaler answers SERVING.

Configuration comes from the scaler's own environment (the Deployment sets it once for both):
SCALER_GRPC_PORT, SCALER_TLS_CERT, SCALER_TLS_KEY, SCALER_TLS_CLIENT_CA. Without SCALER_TLS_CERT the
check is plaintext. The server certificate is verified against, in order: SCALER_HEALTH_CA,
SCALER_TLS_CLIENT_CA, ca.crt next to the certificate, or the certificate itself (self-signed); its
name must be SCALER_HEALTH_SERVER_NAME (default ``localhost``, so issue the certificate with that SAN
beside the Service names KEDA dials). Under mutual TLS the scaler's own key pair is the client
certificate, so issue it for both server and client auth from the CA in SCALER_TLS_CLIENT_CA.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE = "externalscaler.ExternalScaler"
EXIT_OK, EXIT_NOT_SERVING, EXIT_ERROR = 0, 1, 2


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _root_ca(env: dict[str, str], cert: str) -> bytes:
    candidates = [
        env.get("SCALER_HEALTH_CA", ""),
        env.get("SCALER_TLS_CLIENT_CA", ""),
        os.path.join(os.path.dirname(cert), "ca.crt"),
        cert,
    ]
    for path in candidates:
        if path and os.path.isfile(path):
            return _read(path)
    raise FileNotFoundError(f"no CA to verify the server certificate {cert}")


def channel(env: dict[str, str]) -> grpc.Channel:
    """A channel to the local scaler, secured like the server is."""
    target = f"127.0.0.1:{env.get('SCALER_GRPC_PORT', '9090')}"
    cert = env.get("SCALER_TLS_CERT", "")
    if not cert:
        return grpc.insecure_channel(target)
    key = env.get("SCALER_TLS_KEY", "")
    mutual = bool(env.get("SCALER_TLS_CLIENT_CA"))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_root_ca(env, cert),
        private_key=_read(key) if mutual else None,
        certificate_chain=_read(cert) if mutual else None,
    )
    name = env.get("SCALER_HEALTH_SERVER_NAME", "localhost")
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", name)])


def check(env: dict[str, str], timeout_s: float = 3.0) -> int:
    """0 when SERVING, 1 when the server answers anything else, 2 when it cannot be asked."""
    try:
        with channel(env) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout_s)
    except (grpc.RpcError, OSError) as exc:
        print(f"health check failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{SERVICE}: {status}")
    return EXIT_OK if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_NOT_SERVING


if __name__ == "__main__":
    sys.exit(check(dict(os.environ)))
