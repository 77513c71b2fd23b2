"""A real Prometheus (Debian's ``prometheus`` binary) on loopback, scraping the test exporter."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

SCRAPE_INTERVAL_S = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, why: str) -> str:
    """Path of a command-line tool the tests need. Under CI=true a missing tool fails the test; locally it
    skips loudly (``why`` says what needs it and how to install it)."""
    path = shutil.which(name)
    if path is None:
        message = f"the '{name}' binary is not installed: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip("SKIPPING: " + message)
    return path


def require_prometheus() -> str:
    """Path of the prometheus binary (Debian's package; .ci/run installs it)."""
    return require_binary(
        "prometheus", "integration tests need Debian's prometheus package (apt-get install prometheus)"
    )


class PrometheusProcess:
    """``start()`` writes a config, launches Prometheus on 127.0.0.1 and waits until it is ready."""

    def __init__(self, workdir: Path, exporter_address: str, sd_file: Path, extra_scrape: str = "") -> None:
        self.workdir = workdir
        self.exporter_address = exporter_address
        self.sd_file = sd_file
        self.extra_scrape = extra_scrape
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def query_log(self) -> Path:
        """Every query Prometheus was asked, one JSON object per line (Prometheus' own query log)."""
        return self.workdir / "queries.log"

    def queries_seen(self) -> list[str]:
        if not self.query_log.exists():
            return []
        out = []
        for line in self.query_log.read_text().splitlines():
            try:
                out.append(str(json.loads(line)["params"]["query"]))
            except (ValueError, KeyError):
                continue
        return out

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        return f"""
global:
  scrape_interval: {SCRAPE_INTERVAL_S}s
  scrape_timeout: {SCRAPE_INTERVAL_S}s
  evaluation_interval: {SCRAPE_INTERVAL_S}s
  query_log_file: {self.query_log}
scrape_configs:
  - job_name: pods
    file_sd_configs:
      - files: ["{self.sd_file}"]
        refresh_interval: 1s
  - job_name: dcgm
    honor_labels: true
    metrics_path: /dcgm/metrics
    static_configs:
      - targets: ["{self.exporter_address}"]
{self.extra_scrape}
"""

    def start(self, port: int | None = None) -> None:
        binary = require_prometheus()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(self.config())
        self.port = port or self.port or free_port()
        if self._log is not None:
            self._log.close()
        self._log = log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.extra_flags(),
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
        )
        self.wait_ready()

    def extra_flags(self) -> list[str]:
        """Flags beyond config, storage and address (a subclass may secure the API instead)."""
        return ["--web.enable-lifecycle"]

    def open(self, path: str, timeout_s: float = 2.0) -> bytes:
        """GET ``path`` on the API (a subclass adds TLS and credentials)."""
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as r:
            return bytes(r.read())

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            try:
                self.open("/-/ready", timeout_s=1.0)
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("prometheus did not become ready in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def backfill(self, selector: str, start_s: float, end_s: float, step_s: float = 5.0) -> int:
        """History from ``start_s`` to ``end_s`` for every series ``selector`` matches now, as if this
        Prometheus had been scraping all along: blocks made by ``promtool tsdb create-blocks-from
        openmetrics``, added while stopped, then started again on the same port. Names ending in
        ``_total``, ``_count``, ``_sum`` or ``_bucket`` climb linearly to their current value (counters);
        the rest hold it. Returns the number of series written."""
        from simulations.openmetrics import Families, labels_text

        series = self.query(selector)
        families = Families()
        steps = int((end_s - start_s) // step_s)
        for s in series:
            labels = dict(s["metric"])
            name = labels.pop("__name__")
            now_value = float(s["value"][1])
            counter = name.endswith(("_total", "_count", "_sum", "_bucket"))
            families.declare(name, "unknown", "backfilled by the test harness")
            text = labels_text(sorted(labels.items()))
            for i in range(steps + 1):
                value = now_value * i / steps if counter else now_value
                families.add(name, name, text, value, start_s + i * step_s)
        om = self.workdir / "backfill.om"
        with om.open("w") as out:
            families.write(out)
        blocks = self.workdir / "backfill-blocks"
        shutil.rmtree(blocks, ignore_errors=True)
        promtool = require_binary("promtool", "backfilling history (Debian: prometheus)")
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(blocks)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.stop()
        for block in blocks.iterdir():
            shutil.move(str(block), str(self.workdir / "data" / block.name))
        self.start()
        return len(series)

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = json.loads(self.open("/api/v1/query?" + urllib.parse.urlencode({"query": promql}), 5.0))
        return list(body["data"]["result"])

    def wait_until(
        self,
        promql: str,
        check: Callable[[list[dict[str, Any]]], bool],
        timeout_s: float = 30.0,
        poll_s: float = 0.25,
    ) -> float:
        """Poll ``promql`` until ``check(result)`` holds; bounded in time. Returns the monotonic time at
        which it was first seen to hold."""
        deadline = time.monotonic() + timeout_s
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if check(result):
                return time.monotonic()
            time.sleep(poll_s)
        raise TimeoutError(f"{promql!r} never satisfied the check; last result: {result}")
