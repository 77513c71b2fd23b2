"""A minimal stand-in for the Kubernetes API server, on loopback, for tests only.

No kube-apiserver can be installed on this machine, so this answers the one endpoint the scaler uses,
``GET /api/v1/namespaces/<ns>/pods``, with PodList objects shaped like the real ones (the official
client deserialises them into V1PodList). Everything else is 404. It is deliberately small.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class FakeKubePod:
    namespace: str
    name: str
    created_s: float
    ready_s: float | None = None  # None: not Ready yet (warming)
    deleting: bool = False

    def to_json(self) -> dict[str, object]:
        conditions = [
            {
                "type": "Ready",
                "status": "True" if self.ready_s is not None else "False",
                "lastTransitionTime": _iso(self.ready_s if self.ready_s is not None else self.created_s),
            }
        ]
        meta: dict[str, object] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": f"uid-{self.name}",
            "creationTimestamp": _iso(self.created_s),
        }
        if self.deleting:
            meta["deletionTimestamp"] = _iso(self.created_s + 1)
        return {
            "metadata": meta,
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
            "status": {"phase": "Running", "conditions": conditions},
        }


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubeAPI:
    """``pods`` is mutable; ``requests`` records every path asked."""

    def __init__(self) -> None:
        self.pods: list[FakeKubePod] = []
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append(self.path)
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                    body = json.dumps(
                        {
                            "kind": "PodList",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": "1"},
                            "items": [p.to_json() for p in api.pods if p.namespace == parts[3]],
                        }
                    ).encode()
                    self.send_response(200)
                else:
                    body = json.dumps({"kind": "Status", "code": 404, "message": "not served"}).encode()
                    self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class TextExporter:
    """Serves a settable exposition-format body at ``/metrics`` (a gateway queue, kube-state-metrics)."""

    def __init__(self) -> None:
        self.body = ""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = exporter.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._httpd.server_port}"

    def scrape_config(self) -> str:
        """A scrape job (for PrometheusProcess's ``extra_scrape``) that keeps the body's own labels."""
        return f"""  - job_name: text
    honor_labels: true
    static_configs:
      - targets: ["{self.address}"]
"""

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
