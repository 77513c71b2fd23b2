"""Helpers for the reliability suite: an in-memory source, loopback proxies, a private Prometheus."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scaler.core.signals import Signals
from scaler.core.state import Observation, State
from scaler.core.target import Target
from tests.harness.exporter import FakeFleet
from tests.harness.prometheus import PrometheusProcess

Key = tuple[str, str, str]


@dataclass
class MemorySource:
    """A Source answering from memory: every target gets ``queue`` requests over ``replicas`` pods.

    ``per_deployment`` overrides the queue for one Deployment; ``fail`` makes every collect raise.
    """

    queue: float = 8.0
    replicas: int = 2
    per_deployment: dict[str, float] = field(default_factory=dict)
    fail: bool = False
    collects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self, targets: Sequence[Target]) -> Mapping[Key, Observation]:
        with self.lock:
            self.collects += 1
        if self.fail:
            raise RuntimeError("memory source told to fail")
        out: dict[Key, Observation] = {}
        for t in targets:
            q = self.per_deployment.get(t.config.deployment, self.queue)
            signals = Signals(current_replicas=self.replicas, ready_replicas=self.replicas, queue_requests=q)
            # The gateway in front (activationQuery) holds the same demand.
            state = State(activation_value=q if t.config.activation_query is not None else None)
            out[(t.namespace, t.name, t.config.deployment)] = Observation(signals, state)
        return out


class DelayProxy:
    """A loopback TCP proxy; while ``delay_s`` > 0 it holds each upstream response that long."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True, name="delay-proxy")
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._pipe_pair, args=(client,), daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _pipe_pair(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        up = threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True)
        up.start()
        self._pipe(upstream, client, True)
        up.join(timeout=5)

    def _pipe(self, src: socket.socket, dst: socket.socket, responses: bool) -> None:
        src.settimeout(1.0)
        deadline = time.monotonic() + 120  # no connection lives past two minutes in a test
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if responses and self.delay_s > 0:
                    # hold each chunk of a response (keep-alive connections too), in small steps so
                    # close() is prompt
                    until = time.monotonic() + self.delay_s
                    while time.monotonic() < until and not self._stop.is_set():
                        time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._accept.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)


class HeaderCheckingProxy:
    """An HTTP reverse proxy that forwards to ``upstream`` only requests with ``Authorization: <expected>``.

    Records every Authorization header it saw (so a test can show the scaler sent the token)."""

    def __init__(self, upstream: str, expected_authorization: str) -> None:
        self.seen: list[str] = []
        self.refused = 0
        self.expected = expected_authorization  # change it to rotate the accepted credential
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, body: bytes | None) -> None:
                auth = self.headers.get("Authorization", "")
                proxy.seen.append(auth)
                if auth != proxy.expected:
                    proxy.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = urllib.request.Request(upstream + self.path, data=body, method=self.command)
                ctype = self.headers.get("Content-Type")
                if ctype:
                    req.add_header("Content-Type", ctype)
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        data, status = r.read(), r.status
                except urllib.error.HTTPError as exc:
                    data, status = exc.read(), exc.code
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._forward(self.rfile.read(length))

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextlib.contextmanager
def private_prometheus(
    workdir: Path, extra_scrape: str = ""
) -> Iterator[tuple[FakeFleet, PrometheusProcess]]:
    """A fleet and a Prometheus of this test's own, so stopping it disturbs no other test."""
    workdir.mkdir(parents=True, exist_ok=True)
    fleet = FakeFleet(workdir / "targets.json")
    prom = PrometheusProcess(workdir / "prometheus", fleet.address, fleet.sd_file, extra_scrape=extra_scrape)
    try:
        prom.start()
        yield fleet, prom
    finally:
        prom.stop()
        fleet.close()


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> float:
    """Seconds until ``check()`` holds; TimeoutError past ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(interval_s)
    raise TimeoutError(f"condition not met within {timeout_s} s")


class SecuredPrometheus(PrometheusProcess):
    """A PrometheusProcess started with ``--web.config.file`` (TLS and/or basic auth on its API)."""

    def __init__(self, *args: object, web_config: Path, ca_file: Path, user: str, password: str) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.web_config = web_config
        self.ca_file = ca_file
        self.user, self.password = user, password

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def extra_flags(self) -> list[str]:
        return [f"--web.config.file={self.web_config}"]

    def open(self, path: str, timeout_s: float = 2.0) -> bytes:
        import base64
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(self.url + path)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=timeout_s, context=ctx) as r:
            return bytes(r.read())
