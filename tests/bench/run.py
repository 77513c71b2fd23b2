"""``make bench``: the scaler under KEDA-shaped load, side by side with an empty grpcio server.

    python -m tests.bench.run --out out/bench [--quick] [--soak-s 600] [--rounds 5]

What it measures (every server in its own process, every client in this one, all on 127.0.0.1):

- RPC throughput and p50/p99 latency in the shape of issue 12's goal: 2,000 ScaledObjects registered
  (KEDA's GetMetricSpec), 200 StreamIsActive streams open, then GetMetrics+IsActive pairs (KEDA calls
  IsActive right after GetMetrics) at 16 in flight, for: an empty grpcio aio server returning
  constants, the scaler on an in-memory source (the RPC path alone), and the scaler on a real
  Prometheus (its refresh running). Every round runs every server once, in an order that rotates
  from round to round; the ratios to the empty server are taken within a round, and their median
  and worst round are reported. The server's own CPU time per pair is measured alongside (from
  /proc), which the other work on a shared machine disturbs less than throughput.
- Prometheus queries per refresh for 10, 100 and 2,000 ScaledObjects (the source's own count and
  Prometheus' query log), and the time of one collect.
- What the scaler holds per Deployment for its hour of history (packed, and as tuples for comparison).
- Resident memory (VmRSS) of the scaler on a real Prometheus, sampled over a soak under load, with a
  least-squares slope.

The world's Prometheus is backfilled with an hour of history first (as a production one has hours),
so the scaler's 1 h history window is full from the start instead of filling during the soak.

Results: ``<out>/results.json`` and ``<out>/results.md``. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from scaler.sources.prometheus import HISTORY_S

N_SO = 2000
N_STREAMS = 200
NAMESPACES = 10
# Issue 12 measured an independent grpc-go client at 16 in flight; the goal is stated for that shape.
CONCURRENCY = 16
# The goal: the scaler on a real Prometheus at >= 0.8x the empty server's pairs/s, p99 <= 1.5x its p99.
GOAL_PAIRS_RATIO = 0.8
GOAL_P99_RATIO = 1.5
SERVERS = ("empty", "scaler-memory", "scaler-prometheus")
# --servers may add these, to show what the Python gRPC server itself costs: the same constants from
# grpcio's thread-pool server, and the asyncio one with the health and reflection services beside it.
# scaler-prometheus-thread: the scaler on the real Prometheus with its refresh in a worker thread of the
# serving process (--refresh-in-thread), beside scaler-prometheus's child process. scaler-prometheus-nice0:
# the child at niceness 0 (--refresh-nice 0) instead of the default 10, in the same rounds.
ON_PROMETHEUS = ("scaler-prometheus", "scaler-prometheus-thread", "scaler-prometheus-nice0")
EXTRA_SERVERS = ("empty-sync", "empty-health-reflection", *ON_PROMETHEUS[1:])
PARTS = ("rpc", "queries", "history", "soak", "simulator")
# --parts may add these: a py-spy profile of the scaler on a real Prometheus under the RPC load.
EXTRA_PARTS = ("profile",)
REFRESH_ENV = "BENCH_SCALER_REFRESH_S"  # how --refresh-seconds reaches the server subprocesses
SCALER_SD_FILE = "scaler-sd.json"  # in the work directory: the scaler the world's Prometheus scrapes
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"


# -- servers (each runs in its own process: ``--serve KIND``) -------------------------------------------


def _empty_servicer() -> Any:
    """KEDA's service answering constants: the baseline every ratio is taken against."""
    from scaler._generated import externalscaler_pb2 as pb
    from scaler._generated import externalscaler_pb2_grpc as pb_grpc

    class Empty(pb_grpc.ExternalScalerServicer):
        async def IsActive(self, request: Any, context: Any) -> Any:
            return pb.IsActiveResponse(result=True)

        async def StreamIsActive(self, request: Any, context: Any) -> Any:
            yield pb.IsActiveResponse(result=True)
            await asyncio.Event().wait()

        async def GetMetricSpec(self, request: Any, context: Any) -> Any:
            return pb.GetMetricSpecResponse(
                metricSpecs=[pb.MetricSpec(metricName="llm-x", targetSize=1, targetSizeFloat=1.0)]
            )

        async def GetMetrics(self, request: Any, context: Any) -> Any:
            return pb.GetMetricsResponse(
                metricValues=[pb.MetricValue(metricName="llm-x", metricValue=2, metricValueFloat=2.0)]
            )

    return Empty()


async def _serve_empty(port_file: Path, with_health_and_reflection: bool = False) -> None:
    from scaler._generated import externalscaler_pb2_grpc as pb_grpc

    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(_empty_servicer(), server)  # type: ignore[no-untyped-call]
    if with_health_and_reflection:  # what ScalerServer adds beside KEDA's service
        from grpc_health.v1 import health, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined]
        names = ("externalscaler.ExternalScaler", health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(json.dumps({"grpc": port, "metrics": 0}))
    await _until_terminated()
    await server.stop(1)


def _serve_empty_sync(port_file: Path) -> None:
    """The same constants from grpcio's thread-pool server. Every open stream holds a worker thread
    there, so the pool is sized for the 200 streams plus the callers in flight."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from scaler._generated import externalscaler_pb2 as pb
    from scaler._generated import externalscaler_pb2_grpc as pb_grpc

    stop = threading.Event()

    class EmptySync(pb_grpc.ExternalScalerServicer):
        def IsActive(self, request: Any, context: Any) -> Any:
            return pb.IsActiveResponse(result=True)

        def StreamIsActive(self, request: Any, context: Any) -> Any:
            yield pb.IsActiveResponse(result=True)
            while context.is_active() and not stop.wait(1.0):
                pass

        def GetMetricSpec(self, request: Any, context: Any) -> Any:
            return pb.GetMetricSpecResponse(
                metricSpecs=[pb.MetricSpec(metricName="llm-x", targetSize=1, targetSizeFloat=1.0)]
            )

        def GetMetrics(self, request: Any, context: Any) -> Any:
            return pb.GetMetricsResponse(
                metricValues=[pb.MetricValue(metricName="llm-x", metricValue=2, metricValueFloat=2.0)]
            )

    server = grpc.server(ThreadPoolExecutor(max_workers=N_STREAMS + 4 * CONCURRENCY))
    pb_grpc.add_ExternalScalerServicer_to_server(EmptySync(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(json.dumps({"grpc": port, "metrics": 0}))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    server.stop(1)


async def _serve_scaler(
    port_file: Path, prometheus_url: str | None, refresh_process: bool = True, refresh_nice: int | None = None
) -> None:
    from scaler.serve.server import ScalerServer, ServeOptions, tune_process

    tune_process()  # as `python -m scaler serve` does
    from tests.reliability.support import MemorySource

    options = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url=prometheus_url or "http://127.0.0.1:1",
        refresh_s=float(os.environ.get(REFRESH_ENV, "2")),  # --refresh-seconds; the scaler's default
        rate_window="10s",
        history_step_s=15.0,
        query_timeout_s=10.0,
        refresh_process=refresh_process,
        refresh_nice=ServeOptions.refresh_nice if refresh_nice is None else refresh_nice,  # None: the default
    )
    source = MemorySource(queue=8.0, replicas=2)
    server = ScalerServer(options, source_for=None if prometheus_url else (lambda _url: source))
    await server.start()
    port_file.write_text(json.dumps({"grpc": server.grpc_port, "metrics": server.metrics_port}))
    await _until_terminated()
    await server.stop(1)


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


class ServerProcess:
    """One server subprocess; ``address``, ``metrics_port``, ``rss_kib()``."""

    def __init__(self, kind: str, workdir: Path, prometheus_url: str | None = None) -> None:
        port_file = workdir / f"{kind}.port"
        port_file.unlink(missing_ok=True)
        args = [sys.executable, "-m", "tests.bench.run", "--serve", kind, "--port-file", str(port_file)]
        if prometheus_url:
            args += ["--prometheus-url", prometheus_url]
        self._log = open(workdir / f"{kind}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{kind} server did not start: {(workdir / f'{kind}.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)
        ports = json.loads(port_file.read_text())
        self.address = f"127.0.0.1:{ports['grpc']}"
        self.metrics_port = int(ports["metrics"])
        self._scrape_file = workdir / SCALER_SD_FILE
        self._scrape([f"127.0.0.1:{self.metrics_port}"] if self.metrics_port else [])

    def pids(self) -> list[int]:
        """The server process and its descendants (the scaler's refresh process, multiprocessing's
        resource tracker): what the server costs is all of them."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in task.read_text().split()]
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds the server's processes have used (``/proc/<pid>/stat``)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # after the command name: field 14 (utime) and 15 (stime) of proc(5) are at 11 and 12 here
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        """Resident memory of the server's processes together (VmRSS summed)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        if not total:
            raise RuntimeError("no VmRSS")
        return total

    def metric(self, name: str) -> float | None:
        """A sample of the server's own metrics (the empty server has none)."""
        import urllib.request

        if not self.metrics_port:
            return None

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        return None

    def _scrape(self, targets: list[str]) -> None:
        """What the world's Prometheus scrapes of this server's own metrics (file SD, re-read each second)."""
        tmp = self._scrape_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": targets, "labels": {"namespace": "llm-keda-scaler"}}]))
        tmp.replace(self._scrape_file)

    def stop(self) -> None:
        self._scrape([])
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# -- the KEDA-shaped client -------------------------------------------------------------------------------


def _refs(pb: ModuleType, n: int) -> list[Any]:
    out = []
    for i in range(n):
        ns, d = f"bench-{i % NAMESPACES}", f"d{i // NAMESPACES}"
        meta = {"backend": "vllm", "deployment": d, "targetQueuePerReplica": "4", "scaleToZero": "false"}
        out.append(pb.ScaledObjectRef(name=f"so-{i}", namespace=ns, scalerMetadata=meta))
    return out


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


class Client:
    """Registers the ScaledObjects, holds the streams open, and polls."""

    def __init__(self, address: str, keda: tuple[ModuleType, ModuleType], n_so: int, n_streams: int) -> None:
        self.pb, self.pb_grpc = keda
        self.address = address
        self.refs = _refs(self.pb, n_so)
        self.n_streams = n_streams
        self.channel: grpc.aio.Channel | None = None
        self.streams: list[Any] = []
        self.errors: dict[str, int] = {}

    async def __aenter__(self) -> Client:
        self.channel = grpc.aio.insecure_channel(self.address)
        await asyncio.wait_for(self.channel.channel_ready(), 30)
        self.stub = self.pb_grpc.ExternalScalerStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for st in self.streams:
            st.cancel()
        assert self.channel is not None
        await self.channel.close()

    async def register(self, timeout_s: float) -> float:
        """GetMetricSpec once per ScaledObject (KEDA on start), bounded concurrency; returns seconds."""
        started = time.perf_counter()
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(r: Any) -> None:
            async with sem:
                await self._call(self.stub.GetMetricSpec, r, 60.0)

        await asyncio.wait_for(asyncio.gather(*(one(r) for r in self.refs)), timeout_s)
        return time.perf_counter() - started

    async def open_streams(self) -> None:
        for r in self.refs[: self.n_streams]:
            st = self.stub.StreamIsActive(r)
            self.streams.append(st)
        await asyncio.wait_for(asyncio.gather(*(st.read() for st in self.streams)), 60)

    async def _call(self, method: Any, request: Any, timeout_s: float = 10.0) -> bool:
        try:
            await method(request, timeout=timeout_s)
            return True
        except grpc.aio.AioRpcError as exc:
            self.errors[exc.code().name] = self.errors.get(exc.code().name, 0) + 1
            return False

    async def poll(self, duration_s: float, shape: str, rpcs_per_s: float | None = None) -> dict[str, Any]:
        """Poll every ScaledObject in turn for ``duration_s`` with CONCURRENCY workers. ``shape`` "pairs":
        GetMetrics then IsActive (KEDA's poll; issue 12's goal); "keda": GetMetrics, IsActive and the HPA's
        second GetMetrics. ``rpcs_per_s`` paces them (None: as fast as CONCURRENCY allows). Latency is
        per RPC."""
        latencies: list[float] = []
        done = 0
        polls = 0
        stop_at = time.perf_counter() + duration_s
        cursor = 0
        per_poll = 2 if shape == "pairs" else 3
        # each worker makes ``per_poll`` RPCs, then waits: 16 workers x 3 / 0.24 s = 200 RPC/s
        pace = per_poll * CONCURRENCY / rpcs_per_s if rpcs_per_s else 0.0

        async def worker() -> None:
            nonlocal done, cursor, polls
            while time.perf_counter() < stop_at:
                r = self.refs[cursor % len(self.refs)]
                cursor += 1
                req = self.pb.GetMetricsRequest(
                    scaledObjectRef=r, metricName=f"llm-{r.scalerMetadata['deployment']}"
                )
                calls = [(self.stub.GetMetrics, req), (self.stub.IsActive, r)]
                if shape == "keda":
                    calls.append((self.stub.GetMetrics, req))
                ok = True
                for method, arg in calls:
                    t0 = time.perf_counter()
                    if await self._call(method, arg):
                        latencies.append(time.perf_counter() - t0)
                        done += 1
                    else:
                        ok = False
                polls += ok
                if pace:
                    await asyncio.sleep(pace)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        return {
            "rpcs": done,
            "rps": done / elapsed,
            "polls": polls,
            "polls_per_s": polls / elapsed,
            "p50_ms": _pct(latencies, 0.50) * 1e3,
            "p99_ms": _pct(latencies, 0.99) * 1e3,
        }


def _refresh_totals(server: ServerProcess) -> tuple[float, float] | None:
    """The scaler's (refreshes, seconds spent in them) so far, from its metrics; None for the empty ones.
    Read outside the measured window: the scrape serves every ScaledObject's series."""
    count = server.metric("llm_scaler_refresh_duration_seconds_count")
    total = server.metric("llm_scaler_refresh_duration_seconds_sum")
    return None if count is None or total is None else (count, total)


async def _rpc_round(
    server: ServerProcess, keda: tuple[ModuleType, ModuleType], duration_s: float
) -> dict[str, Any]:
    async with Client(server.address, keda, N_SO, N_STREAMS) as c:
        register_s = await c.register(600)
        await c.open_streams()
        refreshes0 = await asyncio.to_thread(_refresh_totals, server)
        cpu0, client0 = server.cpu_s(), time.process_time()
        result = await c.poll(duration_s, "pairs")
        server_cpu_s, client_cpu_s = server.cpu_s() - cpu0, time.process_time() - client0
        refreshes1 = await asyncio.to_thread(_refresh_totals, server)
        if refreshes0 is not None and refreshes1 is not None:
            # Freshness under the load: how many refreshes the polling saw, and how long each took.
            count, took_s = refreshes1[0] - refreshes0[0], refreshes1[1] - refreshes0[1]
            result["refreshes"] = count
            result["refresh_mean_s"] = took_s / count if count else None
        result["register_s"] = register_s
        result["errors"] = dict(c.errors)
        result["streams_open"] = sum(1 for st in c.streams if not st.done())
        result["server_cpu_us_per_pair"] = server_cpu_s / max(1, result["polls"]) * 1e6
        result["server_cpu_share"] = server_cpu_s / duration_s  # of one core
        result["client_cpu_share"] = client_cpu_s / duration_s
        result["loadavg_1m"] = os.getloadavg()[0]
        return result


def bench_rpc(
    workdir: Path,
    keda: tuple[ModuleType, ModuleType],
    rounds: int,
    duration_s: float,
    prometheus_url: str,
    servers: Sequence[str] = SERVERS,
) -> dict[str, Any]:
    servers = ("empty", *(k for k in servers if k != "empty"))  # every ratio needs the baseline
    per: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
    for i in range(rounds):
        # Rotate the order so no server always runs first (or right after Prometheus' compaction, or...).
        order = servers[i % len(servers) :] + servers[: i % len(servers)]
        for kind in order:
            server = ServerProcess(kind, workdir, prometheus_url if kind in ON_PROMETHEUS else None)
            try:
                result = asyncio.run(_rpc_round(server, keda, duration_s))
            finally:
                server.stop()
            result["round"] = i
            per[kind].append(result)
            print(
                f"  round {i} {kind}: {result['polls_per_s']:.0f} pairs/s, p99 {result['p99_ms']:.2f} ms, "
                f"server {result['server_cpu_us_per_pair']:.0f} us CPU/pair, load {result['loadavg_1m']:.2f}",
                flush=True,
            )
    out: dict[str, Any] = {
        "rounds": rounds,
        "duration_s": duration_s,
        "concurrency": CONCURRENCY,
        "servers": {},
    }
    for kind, results in per.items():
        out["servers"][kind] = {
            "pairs_per_s_median": statistics.median(r["polls_per_s"] for r in results),
            "rps_median": statistics.median(r["rps"] for r in results),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in results),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in results),
            "register_s_median": statistics.median(r["register_s"] for r in results),
            "server_cpu_us_per_pair_median": statistics.median(r["server_cpu_us_per_pair"] for r in results),
            "refreshes_median": _median_of(r.get("refreshes") for r in results),
            "refresh_mean_s_median": _median_of(r.get("refresh_mean_s") for r in results),
            "rounds": results,
        }
    for kind in servers[1:]:
        pairs = [s["polls_per_s"] / e["polls_per_s"] for s, e in zip(per[kind], per["empty"], strict=True)]
        p99 = [s["p99_ms"] / e["p99_ms"] for s, e in zip(per[kind], per["empty"], strict=True)]
        o = out["servers"][kind]
        o["pairs_ratio_rounds"], o["pairs_ratio_median"], o["pairs_ratio_lowest"] = pairs, *_mid_min(pairs)
        o["p99_ratio_rounds"], o["p99_ratio_median"] = p99, statistics.median(p99)
        o["p99_ratio_highest"] = max(p99)
    if "scaler-prometheus" not in out["servers"]:
        return out
    goal = out["servers"]["scaler-prometheus"]
    out["goal"] = (
        f"scaler on a real Prometheus: pairs/s >= {GOAL_PAIRS_RATIO} x empty and p99 <= {GOAL_P99_RATIO} x "
        "empty (medians of per-round ratios)"
    )
    out["goal_met"] = (
        goal["pairs_ratio_median"] >= GOAL_PAIRS_RATIO and goal["p99_ratio_median"] <= GOAL_P99_RATIO
    )
    return out


def _median_of(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _mid_min(values: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values), min(values)


# -- where the scaler's CPU goes under the RPC load ----------------------------------------------------------


def bench_profile(
    workdir: Path,
    keda: tuple[ModuleType, ModuleType],
    duration_s: float,
    prometheus_url: str,
    raw: Path,
    top: int = 15,
) -> dict[str, Any]:
    """py-spy (sampling at 200 Hz, attached to the server process without pausing it, ``--gil``: only
    the thread holding the GIL, i.e. whatever Python work competes with the RPCs) on the scaler on a real
    Prometheus while the RPC round's client polls: the functions most on-CPU, by their own time and by
    the time under them, as shares of all samples (grpc's C core outside the GIL does not show)."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        return {"skipped": f"py-spy is not installed next to {sys.executable} (pip install py-spy)"}
    server = ServerProcess("scaler-prometheus", workdir, prometheus_url)

    async def run() -> dict[str, Any]:
        async with Client(server.address, keda, N_SO, N_STREAMS) as c:
            await c.register(600)
            await c.open_streams()
            spy = subprocess.Popen(
                [str(py_spy), "record", "--pid", str(server.proc.pid), "--duration", f"{duration_s:.0f}",
                 "--rate", "200", "--gil", "--nonblocking", "--format", "raw", "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            result = await c.poll(duration_s, "pairs")
            _, err = await asyncio.to_thread(spy.communicate, timeout=duration_s + 60)
            result["py_spy"] = err.decode(errors="replace").strip().splitlines()[-2:]
            return result

    try:
        poll = asyncio.run(run())
    finally:
        server.stop()
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines() if raw.exists() else ():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        total += count
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
        for f in set(frames):
            under[f] = under.get(f, 0) + count

    def ranked(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, n / total) for f, n in sorted(d.items(), key=lambda kv: -kv[1])[:top]] if total else []

    # The project's own functions by the time under them: what the scaler's code costs, RPC and refresh.
    ours = {f: n for f, n in under.items() if "(scaler/" in f}
    return {
        "duration_s": duration_s,
        "samples": total,
        "poll": poll,
        "raw": str(raw),
        "self": ranked(own),
        "total": ranked(under),
        "project_total": ranked(ours),
    }


def _frame(frame: str) -> str:
    """``handler (scaler/serve/service.py:171)`` -> ``handler (scaler/serve/service.py)``: one function,
    whichever line was running; paths from the project or site-packages onwards."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/operating/", "/work/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


# -- queries per refresh -----------------------------------------------------------------------------------


def bench_queries(prometheus: Any) -> dict[str, Any]:
    from scaler.core.target import target_from_ref
    from scaler.sources.prometheus import PrometheusSource

    out: dict[str, Any] = {}
    for n in (10, 100, 2000):
        targets = []
        for i in range(n):
            meta = {
                "backend": "vllm",
                "deployment": f"d{i // NAMESPACES}",
                "targetQueuePerReplica": "4",
                "scaleToZero": "false",
            }
            targets.append(target_from_ref(f"bench-{i % NAMESPACES}", f"so-{i}", meta))
        source = PrometheusSource(prometheus.url, rate_window="10s", history_step_s=15.0, timeout_s=10.0)
        row: dict[str, Any] = {}
        for label in ("first", "steady"):
            before = len(prometheus.queries_seen())
            started = time.perf_counter()
            source.collect(targets)
            row[f"{label}_collect_s"] = time.perf_counter() - started
            row[f"{label}_queries"] = source.queries_last_collect
            # Prometheus' own log: lines written by this collect (it flushes as it goes)
            row[f"{label}_queries_logged"] = len(prometheus.queries_seen()) - before
        out[str(n)] = row
    counts = {r["steady_queries"] for r in out.values()}
    out["independent_of_n"] = len(counts) == 1
    return out


def bench_history_memory(prometheus: Any) -> dict[str, Any]:
    """What the scaler holds per Deployment for its hour of history, measured with tracemalloc around
    one collect of the Deployments that have data (the observations the refresher keeps plus the
    source's history cache), and the same points as tuples of floats (the representation before
    ``pack_floats``) as the same-run baseline."""
    import gc
    import tracemalloc

    from scaler.core.target import target_from_ref
    from scaler.sources.prometheus import PrometheusSource

    meta = {"backend": "vllm", "targetQueuePerReplica": "4", "scaleToZero": "false"}
    targets = [
        target_from_ref(f"bench-{ns}", f"so-{ns}-{d}", {**meta, "deployment": f"d{d}"})
        for ns in range(NAMESPACES)
        for d in range(5)
    ]
    # one collect first, so imports, the connection pool and caches of the client are not counted
    PrometheusSource(prometheus.url, rate_window="10s", history_step_s=15.0).collect(targets)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        source = PrometheusSource(prometheus.url, rate_window="10s", history_step_s=15.0)
        observations = source.collect(targets)
        gc.collect()
        packed = tracemalloc.get_traced_memory()[0] - before
        series = [s for o in observations.values() for s in o.state.history.values() if s is not None]
        before = tracemalloc.get_traced_memory()[0]
        as_tuples = [(tuple(s.times_s), tuple(s.values)) for s in series]
        tuples = tracemalloc.get_traced_memory()[0] - before
        before = tracemalloc.get_traced_memory()[0]
        as_arrays = [(array("d", s.times_s), array("d", s.values)) for s in series]
        arrays = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    points = sum(len(s) for s in series)
    del as_tuples, as_arrays, source
    return {
        "deployments": len(targets),
        "points_per_deployment": points / len(targets),
        "kib_per_deployment": packed / len(targets) / 1024,
        "observation_series_kib_as_tuples_per_deployment": tuples / len(targets) / 1024,
        "observation_series_kib_packed_per_deployment": arrays / len(targets) / 1024,
    }


# -- memory soak -------------------------------------------------------------------------------------------


async def _soak_load(
    address: str, keda: tuple[ModuleType, ModuleType], soak_s: float, server: ServerProcess
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    async with Client(address, keda, N_SO, N_STREAMS) as c:
        await c.register(600)
        await c.open_streams()
        started = time.perf_counter()

        async def sampler() -> None:
            while time.perf_counter() - started < soak_s:
                samples.append((time.perf_counter() - started, server.rss_kib()))
                await asyncio.sleep(1.0)

        # KEDA's default pollingInterval is 30 s: 2,000 ScaledObjects x 3 RPCs / 30 s = 200 RPC/s
        poll, _ = await asyncio.gather(c.poll(soak_s, "keda", rpcs_per_s=200.0), sampler())
        queries = server.metric("llm_scaler_queries_per_refresh")
        refresh_count = server.metric("llm_scaler_refresh_duration_seconds_count")
        refresh_sum = server.metric("llm_scaler_refresh_duration_seconds_sum")
    return {
        "poll": poll,
        "errors": dict(c.errors),
        "samples": samples,
        "queries_per_refresh": queries,
        "refreshes": refresh_count,
        "refresh_mean_s": (refresh_sum or 0) / refresh_count if refresh_count else None,
    }


def bench_soak(
    workdir: Path, keda: tuple[ModuleType, ModuleType], soak_s: float, prometheus_url: str
) -> dict[str, Any]:
    # Baseline first: the empty server under the same paced load for up to 60 s, so the soak's latency
    # has a same-run reference (the client and Prometheus share the two cores with either server).
    empty = ServerProcess("empty", workdir)
    try:
        baseline = asyncio.run(_soak_load(empty.address, keda, min(60.0, soak_s), empty))
    finally:
        empty.stop()
    server = ServerProcess("scaler-prometheus", workdir, prometheus_url)
    try:
        res = asyncio.run(_soak_load(server.address, keda, soak_s, server))
    finally:
        server.stop()
    res["empty_poll"] = baseline["poll"]
    samples = res.pop("samples")
    # Slope after a warm-up (the first fifth, or 30 s at most): allocator and caches settle first.
    warm = min(30.0, soak_s / 5)
    xs = [t for t, _ in samples if t >= warm]
    ys = [kib / 1024 for t, kib in samples if t >= warm]
    slope = _slope(xs, ys) * 60 if len(xs) > 2 else float("nan")
    return {
        **res,
        "soak_s": soak_s,
        "rss_mib_start": samples[0][1] / 1024 if samples else None,
        "rss_mib_after_warmup": ys[0] if ys else None,
        "rss_mib_end": samples[-1][1] / 1024 if samples else None,
        "rss_mib_max": max(k for _, k in samples) / 1024 if samples else None,
        "rss_slope_mib_per_min": slope,
        "samples": len(samples),
        "rss_series_mib": [
            (round(t, 1), round(k / 1024, 2)) for t, k in samples[:: max(1, len(samples) // 60)]
        ],
    }


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


# -- the world: a real Prometheus scraping the test exporter -------------------------------------------


@contextlib.contextmanager
def _world(workdir: Path) -> Any:
    from tests.harness.exporter import FakePod
    from tests.reliability.support import private_prometheus

    started_s = time.time()
    # The scaler under test is scraped as deploy/scaler/servicemonitor.yaml has it (every 15 s, the
    # ScaledObjects' labels kept), so the cost of serving its own metrics is part of what is measured.
    (workdir / SCALER_SD_FILE).write_text("[]")
    scrape_scaler = f"""
  - job_name: llm-keda-scaler
    honor_labels: true
    scrape_interval: 15s
    scrape_timeout: 10s
    file_sd_configs:
      - files: ["{workdir / SCALER_SD_FILE}"]
        refresh_interval: 1s
"""
    with private_prometheus(workdir / "world", extra_scrape=scrape_scaler) as (fleet, prom):
        # 5 Deployments with 1 pod in each of the 10 namespaces: 50 scrape targets at 1 s
        for ns in range(NAMESPACES):
            for d in range(5):
                fleet.add(
                    FakePod(
                        f"bench-{ns}",
                        # named as Kubernetes names pods: 5 random characters without vowels, 0, 1 or 3
                        f"d{d}-5d4f8b7c9-p{_SUFFIX_CHARS[ns]}x{_SUFFIX_CHARS[d]}z",
                        waiting=3,
                        running=2,
                        generation_tokens_per_s=300,
                        requests_per_s=1,
                    )
                )
        prom.wait_until('count(up{job=~"bench-.*"} == 1) == 50', bool, timeout_s=60)
        prom.wait_until(
            "count(count_over_time(vllm:generation_tokens_total[10s]) >= 5) == 50", bool, timeout_s=60
        )
        # A production Prometheus has hours of data; a fresh one has seconds. The scaler reads a 1 h
        # demand history (HISTORY_S), so on a fresh Prometheus that history, and the scaler's memory
        # with it, grows for the first hour of any soak (+0.19 MiB/min in a 1,800 s soak before this
        # backfill). Give Prometheus the hour it would have had, ending before its first scrape.
        prom.backfill('{job=~"bench-.*"}', started_s - HISTORY_S - 300, started_s - 5)
        prom.wait_until(
            f'min(count_over_time(up{{job=~"bench-.*"}}[{int(HISTORY_S)}s])) >= {int(HISTORY_S / 5 * 0.9)}',
            bool,
            timeout_s=120,
        )
        yield prom


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}  ",
        f"The scaler servers refresh every {results.get('refresh_s', 2.0):g} s.",
        "",
    ]
    rpc = results.get("rpc")
    if rpc:
        lines += [
            f"## RPC load: {N_SO} ScaledObjects registered, {N_STREAMS} open streams, GetMetrics+IsActive "
            f"pairs at {rpc['concurrency']} in flight ({rpc['rounds']} rounds x {rpc['duration_s']:g} s, "
            "medians; ratios are medians of per-round ratios, worst round in brackets)",
            "",
            "| server | pairs/s | vs empty | p50 ms | p99 ms | p99 vs empty | server CPU us/pair | "
            "GetMetricSpec x2000 s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, s in rpc["servers"].items():
            pairs = s.get("pairs_ratio_median")
            pairs_cell = "1.00" if pairs is None else f"{pairs:.2f} ({s['pairs_ratio_lowest']:.2f})"
            p99 = s.get("p99_ratio_median")
            p99_cell = "1.00" if p99 is None else f"{p99:.2f} ({s['p99_ratio_highest']:.2f})"
            lines.append(
                f"| {kind} | {s['pairs_per_s_median']:.0f} | {pairs_cell} | {s['p50_ms_median']:.2f} | "
                f"{s['p99_ms_median']:.2f} | {p99_cell} | {s['server_cpu_us_per_pair_median']:.0f} | "
                f"{s['register_s_median']:.1f} |"
            )
        loads = [r["loadavg_1m"] for s in rpc["servers"].values() for r in s["rounds"]]
        lines += [""]
        for kind, s in rpc["servers"].items():
            if s.get("refreshes_median") is not None:
                mean_s = s["refresh_mean_s_median"]
                lines += [
                    f"{kind}: {s['refreshes_median']:g} refreshes in {rpc['duration_s']:g} s of polling, "
                    f"{'?' if mean_s is None else f'{mean_s:.2f}'} s each (medians over the rounds).  "
                ]
        lines += [""]
        if "goal" in rpc:
            lines += [f"Goal ({rpc['goal']}): {'met' if rpc['goal_met'] else 'NOT met'}."]
        lines += [f"1-minute load average during the rounds: {min(loads):.2f}-{max(loads):.2f}.", ""]
    prof = results.get("profile")
    if prof and "skipped" not in prof:
        lines += [
            f"## Profile: the scaler on a real Prometheus under the pairs load (py-spy, {prof['samples']} "
            f"samples in {prof['duration_s']:g} s, {prof['poll']['polls_per_s']:.0f} pairs/s while sampled)",
            "",
            "| function | self | | project function | total |",
            "|---|---:|---|---|---:|",
        ]
        for (fs, ss), (ft, st) in zip(prof["self"], prof["project_total"], strict=False):
            lines.append(f"| `{fs}` | {ss:.1%} | | `{ft}` | {st:.1%} |")
        lines += [
            "",
            "Self: every function, by the samples it was on top of the stack. Total: the project's own "
            f"functions, by the samples under them. Raw stacks: `{prof['raw']}`.",
            "",
        ]
    elif prof:
        lines += ["## Profile", "", prof["skipped"], ""]
    q = results.get("queries")
    if q:
        lines += [
            "## Prometheus queries per refresh",
            "",
            "| ScaledObjects | first collect | steady collect | "
            "logged by Prometheus (steady) | steady collect s |",
            "|---:|---:|---:|---:|---:|",
        ]
        for n in ("10", "100", "2000"):
            r = q[n]
            lines.append(
                f"| {n} | {r['first_queries']} | {r['steady_queries']} | {r['steady_queries_logged']} | "
                f"{r['steady_collect_s']:.2f} |"
            )
        lines += ["", f"Independent of the number of ScaledObjects: {q['independent_of_n']}", ""]
    h = results.get("history_memory")
    if h:
        lines += [
            "## History held per Deployment (1 h at 15 s)",
            "",
            f"{h['points_per_deployment']:.0f} points per Deployment; all the scaler holds for them "
            f"(observations and the source's cache): {h['kib_per_deployment']:.1f} KiB per Deployment. "
            f"The observations' series alone: {h['observation_series_kib_packed_per_deployment']:.1f} KiB "
            f"packed, {h['observation_series_kib_as_tuples_per_deployment']:.1f} KiB as tuples of floats.",
            "",
        ]
    s = results.get("soak")
    if s:
        lines += [
            f"## Memory soak: scaler on a real Prometheus, {s['soak_s']:g} s at 200 RPC/s",
            "",
            f"RSS {s['rss_mib_start']:.1f} MiB at start, {s['rss_mib_after_warmup']:.1f} after warm-up, "
            f"{s['rss_mib_end']:.1f} at the end (max {s['rss_mib_max']:.1f}); slope after warm-up "
            f"{s['rss_slope_mib_per_min']:+.3f} MiB/min. Queries per refresh (scaler gauge): "
            f"{s['queries_per_refresh']}; {s['refreshes']:.0f} refreshes, "
            f"mean {s['refresh_mean_s'] or 0:.2f} s; "
            f"poll {s['poll']['rps']:.0f} RPC/s, p50 {s['poll']['p50_ms']:.2f} ms, "
            f"p99 {s['poll']['p99_ms']:.2f} ms (empty server, same load, "
            f"{min(60.0, s['soak_s']):g} s: p50 {s['empty_poll']['p50_ms']:.2f} ms, "
            f"p99 {s['empty_poll']['p99_ms']:.2f} ms); errors {s['errors']}.",
            "",
        ]
    sim = results.get("simulator")
    if sim:
        lines += ["## Simulator", "", "```", json.dumps(sim, indent=1)[:2000], "```", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run")
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    p.add_argument("--quick", action="store_true", help="a short smoke: 1 round x 3 s, 20 s soak")
    p.add_argument("--soak-s", type=float, default=None, help="memory soak length (default 600, quick 20)")
    p.add_argument("--rounds", type=int, default=None, help="RPC rounds per server (default 5, quick 1)")
    p.add_argument("--round-s", type=float, default=None, help="seconds of polling per round (default 10)")
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of {','.join(PARTS)} (default: all), may add {','.join(EXTRA_PARTS)}",
    )
    p.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"servers in the RPC rounds (default {','.join(SERVERS)}; may add {','.join(EXTRA_SERVERS)})",
    )
    p.add_argument(
        "--refresh-seconds",
        type=float,
        default=2.0,
        help="the scaler servers' refresh period (default 2, the scaler's own default)",
    )
    p.add_argument("--serve", choices=[*SERVERS, *EXTRA_SERVERS], help=argparse.SUPPRESS)
    p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--prometheus-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        if args.serve in ("empty", "empty-health-reflection"):
            asyncio.run(_serve_empty(args.port_file, args.serve == "empty-health-reflection"))
        elif args.serve == "empty-sync":
            _serve_empty_sync(args.port_file)
        else:
            asyncio.run(
                _serve_scaler(
                    args.port_file,
                    args.prometheus_url if args.serve in ON_PROMETHEUS else None,
                    refresh_process=args.serve != "scaler-prometheus-thread",
                    refresh_nice=0 if args.serve == "scaler-prometheus-nice0" else None,
                )
            )
        return 0

    from tests.harness.keda_client import generate_client

    rounds = args.rounds or (1 if args.quick else 5)
    round_s = args.round_s or (3.0 if args.quick else 10.0)
    soak_s = min(3600.0, args.soak_s or (20.0 if args.quick else 600.0))
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ[REFRESH_ENV] = f"{args.refresh_seconds:g}"
    results: dict[str, Any] = {
        "command": "python -m tests.bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "refresh_s": args.refresh_seconds,
    }
    parts = set(args.parts.split(","))
    if parts - {*PARTS, *EXTRA_PARTS}:
        known = ", ".join((*PARTS, *EXTRA_PARTS))
        p.error(f"--parts: unknown {', '.join(sorted(parts - {*PARTS, *EXTRA_PARTS}))}; known: {known}")
    servers = tuple(args.servers.split(","))
    if set(servers) - {*SERVERS, *EXTRA_SERVERS}:
        p.error(f"--servers: known are {', '.join((*SERVERS, *EXTRA_SERVERS))}")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        keda = generate_client(workdir / "kedaclient")
        with _world(workdir) as prom:
            if "rpc" in parts:
                print(f"rpc: {rounds} round(s) x {round_s:g} s per server", flush=True)
                results["rpc"] = bench_rpc(workdir, keda, rounds, round_s, prom.url, servers)
            if "profile" in parts:
                print(f"profile: {round_s:g} s", flush=True)
                results["profile"] = bench_profile(workdir, keda, round_s, prom.url, args.out / "profile.txt")
            if "queries" in parts:
                print("queries per refresh", flush=True)
                results["queries"] = bench_queries(prom)
            if "history" in parts:
                print("history memory", flush=True)
                results["history_memory"] = bench_history_memory(prom)
            if "soak" in parts:
                print(f"soak: {soak_s:g} s", flush=True)
                results["soak"] = bench_soak(workdir, keda, soak_s, prom.url)
    if "simulator" in parts:
        print("simulator", flush=True)
        from tests.bench import bench_simulator

        results["simulator"] = bench_simulator.run(args.out, scorecard=not args.quick)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "results.md").write_text(_markdown(results))
    print(_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
