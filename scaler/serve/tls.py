"""TLS and mutual TLS for the gRPC port, reloaded when the files change (cert-manager rotation).

Matches KEDA's TriggerAuthentication parameters: KEDA's ``caCert`` trusts our ``--tls-cert``; with
``--tls-client-ca``, KEDA's ``tlsClientCert``/``tlsClientKey`` must be signed by that CA or the
handshake is refused.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading

import grpc

log = logging.getLogger("scaler.serve.tls")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class _Watcher:
    """Re-reads the PEM files whenever one of their modification times or sizes changes."""

    def __init__(self, cert: str, key: str, client_ca: str | None) -> None:
        self._paths = [p for p in (cert, key, client_ca) if p]
        self._cert, self._key, self._ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.initial = self._config()

    def _stat(self) -> tuple[tuple[float, int], ...]:
        out = []
        for p in self._paths:
            try:
                st = os.stat(p)
                out.append((st.st_mtime, st.st_size))
            except OSError:
                out.append((0.0, -1))
        return tuple(out)

    def _config(self) -> grpc.ServerCertificateConfiguration:
        # Check the files the way a TLS library will use them (PEM parses, key matches certificate), so a
        # half-written rotation is refused here, with a message, and retried on the next handshake.
        check = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        check.load_cert_chain(self._cert, self._key)
        if self._ca:
            check.load_verify_locations(cafile=self._ca)
        pair = [(_read(self._key), _read(self._cert))]
        root = _read(self._ca) if self._ca else None
        return grpc.ssl_server_certificate_configuration(pair, root_certificates=root)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC on each new handshake: a new configuration when the files changed, else None."""
        with self._lock:
            stamp = self._stat()
            if stamp == self._stamp:
                return None
            try:
                config = self._config()
            except (OSError, ValueError) as exc:  # half-written (SSLError is an OSError): keep the old pair
                log.warning("TLS files changed but could not be read yet: %s", exc)
                return None
            self._stamp = stamp
            log.info("TLS certificate reloaded from %s", self._cert)
            return config


def server_credentials(cert: str, key: str, client_ca: str | None) -> grpc.ServerCredentials:
    """Server credentials that reload on rotation; with ``client_ca``, client certificates are required."""
    watcher = _Watcher(cert, key, client_ca)
    return grpc.dynamic_ssl_server_credentials(
        watcher.initial,
        watcher.fetch,  # type: ignore[arg-type]  # grpc accepts None: 'no change'
        require_client_authentication=client_ca is not None,
    )
