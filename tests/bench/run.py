"""``make bench``: the scaler under KEDA-shaped load, side by side with an empty grpcio server.

    python -m tests.bench.run --out out/bench [--quick] [--soak-s 600] [--rounds 5]

What it measures (every server in its own process, every client in this one, all on 127.0.0.1):

- RPC throughput and p50/p99 latency for 2,000 ScaledObjects polled as KEDA polls (GetMetricSpec once,
  then per poll GetMetrics, IsActive and the HPA's second GetMetrics) with 200 StreamIsActive streams
  open, for: an empty grpcio aio server returning constants, the scaler on an in-memory source (pure
  RPC cost), and the scaler on a real Prometheus. Rounds alternate servers; medians are reported.
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
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
CONCURRENCY = 32  # KEDA's operator and the HPA poll from a few goroutines each; 32 in flight is generous


# -- servers (each runs in its own process: ``--serve KIND``) -------------------------------------------


async def _serve_empty(port_file: Path) -> None:
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

    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(Empty(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(json.dumps({"grpc": port, "metrics": 0}))
    await _until_terminated()
    await server.stop(1)


async def _serve_scaler(port_file: Path, prometheus_url: str | None) -> None:
    from scaler.serve.server import ScalerServer, ServeOptions, tune_process

    tune_process()  # as `python -m scaler serve` does
    from tests.reliability.support import MemorySource

    options = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url=prometheus_url or "http://127.0.0.1:1",
        refresh_s=2.0,
        rate_window="10s",
        history_step_s=15.0,
        query_timeout_s=10.0,
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

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

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

    def stop(self) -> None:
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

    async def poll(self, duration_s: float, rpcs_per_s: float | None = None) -> dict[str, Any]:
        """KEDA's loop over every ScaledObject: GetMetrics, IsActive, GetMetrics (the HPA), for
        ``duration_s``; ``rpcs_per_s`` paces them (None: as fast as CONCURRENCY allows)."""
        latencies: list[float] = []
        done = 0
        stop_at = time.perf_counter() + duration_s
        cursor = 0
        # each worker makes 3 RPCs per poll, then waits: 32 workers x 3 / 0.48 s = 200 RPC/s
        pace = 3 * CONCURRENCY / rpcs_per_s if rpcs_per_s else 0.0

        async def worker() -> None:
            nonlocal done, cursor
            while time.perf_counter() < stop_at:
                r = self.refs[cursor % len(self.refs)]
                cursor += 1
                req = self.pb.GetMetricsRequest(
                    scaledObjectRef=r, metricName=f"llm-{r.scalerMetadata['deployment']}"
                )
                for method, arg in (
                    (self.stub.GetMetrics, req),
                    (self.stub.IsActive, r),
                    (self.stub.GetMetrics, req),
                ):
                    t0 = time.perf_counter()
                    if await self._call(method, arg):
                        latencies.append(time.perf_counter() - t0)
                        done += 1
                if pace:
                    await asyncio.sleep(pace)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        return {
            "rpcs": done,
            "rps": done / elapsed,
            "p50_ms": _pct(latencies, 0.50) * 1e3,
            "p99_ms": _pct(latencies, 0.99) * 1e3,
        }


async def _rpc_round(address: str, keda: tuple[ModuleType, ModuleType], duration_s: float) -> dict[str, Any]:
    async with Client(address, keda, N_SO, N_STREAMS) as c:
        register_s = await c.register(600)
        await c.open_streams()
        result = await c.poll(duration_s)
        result["register_s"] = register_s
        result["errors"] = dict(c.errors)
        result["streams_open"] = sum(1 for st in c.streams if not st.done())
        return result


def bench_rpc(
    workdir: Path, keda: tuple[ModuleType, ModuleType], rounds: int, duration_s: float, prometheus_url: str
) -> dict[str, Any]:
    kinds = {"empty": None, "scaler-memory": None, "scaler-prometheus": prometheus_url}
    per: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind, url in kinds.items():
            server = ServerProcess(kind, workdir, url)
            try:
                per[kind].append(asyncio.run(_rpc_round(server.address, keda, duration_s)))
            finally:
                server.stop()
    out: dict[str, Any] = {"rounds": rounds, "duration_s": duration_s, "servers": {}}
    for kind, results in per.items():
        out["servers"][kind] = {
            "rps_median": statistics.median(r["rps"] for r in results),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in results),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in results),
            "register_s_median": statistics.median(r["register_s"] for r in results),
            "rounds": results,
        }
    empty = out["servers"]["empty"]
    for kind in ("scaler-memory", "scaler-prometheus"):
        ratios = [s["rps"] / e["rps"] for s, e in zip(per[kind], per["empty"], strict=True)]
        out["servers"][kind]["rps_ratio_to_empty_median"] = statistics.median(ratios)
        out["servers"][kind]["rps_ratio_to_empty_rounds"] = ratios
    out["goal"] = "scaler-memory rps >= 0.5 x empty"
    out["goal_met"] = out["servers"]["scaler-memory"]["rps_ratio_to_empty_median"] >= 0.5
    out["empty_rps_median"] = empty["rps_median"]
    return out


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
        poll, _ = await asyncio.gather(c.poll(soak_s, rpcs_per_s=200.0), sampler())
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
    with private_prometheus(workdir / "world") as (fleet, prom):
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
        f"Machine: {results['machine']}",
        "",
    ]
    rpc = results.get("rpc")
    if rpc:
        lines += [
            f"## RPC load: {N_SO} ScaledObjects, {N_STREAMS} open streams, {CONCURRENCY} in flight "
            f"(median of {rpc['rounds']} rounds x {rpc['duration_s']:g} s)",
            "",
            "| server | RPC/s | vs empty | p50 ms | p99 ms | GetMetricSpec x2000 s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind, s in rpc["servers"].items():
            ratio = s.get("rps_ratio_to_empty_median")
            lines.append(
                f"| {kind} | {s['rps_median']:.0f} | {'1.00' if ratio is None else f'{ratio:.2f}'} | "
                f"{s['p50_ms_median']:.2f} | {s['p99_ms_median']:.2f} | {s['register_s_median']:.1f} |"
            )
        lines += [
            "",
            f"Goal (scaler on memory >= 0.5 x empty): {'met' if rpc['goal_met'] else 'NOT met'}",
            "",
        ]
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
    p.add_argument("--serve", choices=["empty", "scaler-memory", "scaler-prometheus"], help=argparse.SUPPRESS)
    p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--prometheus-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        if args.serve == "empty":
            asyncio.run(_serve_empty(args.port_file))
        else:
            asyncio.run(
                _serve_scaler(
                    args.port_file, args.prometheus_url if args.serve == "scaler-prometheus" else None
                )
            )
        return 0

    from tests.harness.keda_client import generate_client

    rounds = args.rounds or (1 if args.quick else 5)
    round_s = args.round_s or (3.0 if args.quick else 10.0)
    soak_s = min(3600.0, args.soak_s or (20.0 if args.quick else 600.0))
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python -m tests.bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        keda = generate_client(workdir / "kedaclient")
        with _world(workdir) as prom:
            print(f"rpc: {rounds} round(s) x {round_s:g} s per server", flush=True)
            results["rpc"] = bench_rpc(workdir, keda, rounds, round_s, prom.url)
            print("queries per refresh", flush=True)
            results["queries"] = bench_queries(prom)
            print("history memory", flush=True)
            results["history_memory"] = bench_history_memory(prom)
            print(f"soak: {soak_s:g} s", flush=True)
            results["soak"] = bench_soak(workdir, keda, soak_s, prom.url)
    sim_file = Path(__file__).with_name("bench_simulator.py")
    if sim_file.exists():
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
