"""Assembles the process: gRPC (scaler + health + reflection), the metrics port, and the refresher."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from scaler._generated import externalscaler_pb2 as pb
from scaler.core.promql import NAMESPACE_LABELS
from scaler.serve.collector import Collector, ProcessCollector
from scaler.serve.refresher import Refresher
from scaler.serve.service import ExternalScalerService, add_to_server
from scaler.serve.telemetry import Telemetry, start_metrics_server
from scaler.sources.kube import KubernetesReader, open_kubernetes
from scaler.sources.prometheus import PrometheusAuth, PrometheusSource, QueryObserver
from scaler.sources.source import Source

log = logging.getLogger("scaler.serve.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExternalScaler"].full_name  # "externalscaler.ExternalScaler"


@dataclass(frozen=True)
class ServeOptions:
    grpc_port: int = 9090
    metrics_port: int = 8080
    bind_address: str = "[::]"
    prometheus_url: str | None = None
    refresh_s: float = 2.0
    staleness_s: float = 60.0
    query_timeout_s: float = 5.0
    rate_window: str = "1m"
    auth: PrometheusAuth = field(default_factory=PrometheusAuth)
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # "off", "auto" (in-cluster or default kubeconfig if any) or a kubeconfig path.
    kubernetes: str = "off"
    history_step_s: float = 15.0
    # Labels that may pin an activationQuery to its ScaledObject's namespace, beyond namespace,
    # route_namespace and exported_namespace (--activation-namespace-labels).
    activation_namespace_labels: tuple[str, ...] = ()
    # Collect and decide in a child process (off the serving process's GIL) rather than a worker thread
    # (--refresh-in-thread). Only for the scaler's own Prometheus sources on the wall clock: an injected
    # source or clock stays in the thread.
    refresh_process: bool = True
    # Niceness of that child (--refresh-nice): the serving process answers KEDA, whose calls wait on it,
    # while a refresh a few milliseconds later changes nothing. On make bench's 2-core world the child's
    # 0.15-0.2 of a core competed with the RPCs at equal priority.
    refresh_nice: int = 10

    @property
    def namespace_labels(self) -> tuple[str, ...]:
        return (
            *NAMESPACE_LABELS,
            *(x for x in self.activation_namespace_labels if x not in NAMESPACE_LABELS),
        )


class ScalerServer:
    """A running scaler: ``await start()``, then ``await stop()``. Ports 0 pick free ones."""

    def __init__(
        self,
        options: ServeOptions,
        *,
        registry: CollectorRegistry | None = None,
        source_for: Callable[[str], Source] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.options = options
        self.registry = registry or CollectorRegistry()
        self.telemetry = Telemetry(self.registry)

        # Opened here even when the child collects: a kubeconfig that does not load fails the start.
        kube = (
            open_kubernetes(options.kubernetes, timeout_s=options.query_timeout_s)
            if source_for is None
            else None
        )

        def prometheus(url: str) -> Source:
            return prometheus_source(options, url, self.telemetry.observe_query, kube, clock or time.time)

        self._process: ProcessCollector | None = None
        collector: Collector | None = None
        if options.refresh_process and source_for is None and clock is None:
            child_source = functools.partial(child_prometheus_source, options)
            self._process = ProcessCollector(child_source, clock=time.time, nice=options.refresh_nice)
            self._process.observe_queries(self.telemetry.observe_query)
            collector = self._process
        self.refresher = Refresher(
            default_url=options.prometheus_url,
            source_for=source_for or prometheus,
            telemetry=self.telemetry,
            period_s=options.refresh_s,
            staleness_s=options.staleness_s,
            clock=clock or time.time,
            collector=collector,
        )
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.server: grpc.aio.Server | None = None
        self.grpc_port = 0
        self.metrics_port = 0
        self._metrics_http: object | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        server = grpc.aio.server()
        add_to_server(ExternalScalerService(self.refresher, self.options.namespace_labels), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.options.bind_address}:{self.options.grpc_port}"
        credentials = self._credentials()
        if credentials is None:
            self.grpc_port = server.add_insecure_port(address)
        else:
            self.grpc_port = server.add_secure_port(address, credentials)
        await server.start()
        self.server = server
        if self.options.metrics_port >= 0:
            # all interfaces, as prometheus_client's start_http_server did
            httpd = start_metrics_server(self.options.metrics_port, "0.0.0.0", self.telemetry.exposition)
            self._metrics_http = httpd
            self.metrics_port = httpd.server_port
        if self._process is not None:
            # Spawned before SERVING, so the first fetch does not wait for the child's imports (the
            # Kubernetes client's still come with it: 0.2 s of CPU, at the child's niceness).
            await self._process.start()
        self._task = asyncio.create_task(self.refresher.run(), name="refresher")
        # SERVING once every RPC can be answered: the servicer is registered and the refresher runs.
        # Answers about a particular Prometheus are per-ScaledObject (UNAVAILABLE until it answers).
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving gRPC on %s (port %d), metrics on :%d", address, self.grpc_port, self.metrics_port)

    def _credentials(self) -> grpc.ServerCredentials | None:
        o = self.options
        if not o.tls_cert and not o.tls_key:
            return None
        if not (o.tls_cert and o.tls_key):
            raise ValueError("--tls-cert and --tls-key must be given together")
        from scaler.serve.tls import server_credentials

        return server_credentials(o.tls_cert, o.tls_key, o.tls_client_ca)

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.server is not None:
            await self.server.stop(grace_s)
        await self.refresher.aclose()  # no RPC is left to join a first fetch
        self.refresher.collector.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()  # type: ignore[attr-defined]
            self._metrics_http.server_close()  # type: ignore[attr-defined]


def prometheus_source(
    options: ServeOptions,
    url: str,
    observe: QueryObserver,
    kube: KubernetesReader | None,
    clock: Callable[[], float] = time.time,
) -> PrometheusSource:
    """The scaler's source for one Prometheus server, as the options configure it."""
    return PrometheusSource(
        url,
        timeout_s=options.query_timeout_s,
        rate_window=options.rate_window,
        auth=options.auth,
        observe=observe,
        history_step_s=options.history_step_s,
        kube=kube,
        clock=clock,
        staleness_s=options.staleness_s,
        namespace_labels=options.namespace_labels,
    )


@functools.cache
def _child_kube(kubernetes: str, timeout_s: float) -> KubernetesReader | None:
    return open_kubernetes(kubernetes, timeout_s=timeout_s)


def child_prometheus_source(options: ServeOptions, url: str, observe: QueryObserver) -> Source:
    """``prometheus_source`` in the refresh's child process, with the child's own Kubernetes client (one
    per process); a module-level function, so ``functools.partial(child_prometheus_source, options)``
    pickles for the spawned child."""
    return prometheus_source(options, url, observe, _child_kube(options.kubernetes, options.query_timeout_s))


class ScalerThread:
    """A ScalerServer on its own asyncio loop in a background thread, for embedding (the simulator's closed
    loop, tests). ``start()``; ``call(coro_fn)`` runs a coroutine on the server's loop; ``stop()``."""

    def __init__(
        self,
        options: ServeOptions,
        source_for: Callable[[str], Source] | None = None,
        clock: Callable[[], float] | None = None,
        grace_s: float = 1.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.loop = asyncio.new_event_loop()
        self.server = ScalerServer(options, registry=self.registry, source_for=source_for, clock=clock)
        self.grace_s = grace_s
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="scaler-loop")

    def start(self) -> ScalerThread:
        self._thread.start()
        self.call(self.server.start).result(timeout=30)
        return self

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    def stop(self) -> None:
        self.call(lambda: self.server.stop(grace_s=self.grace_s)).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


# The refresh (collect, 2,000 decisions and their metrics) runs in a worker thread; with CPython's default
# 5 ms GIL switch interval each hand-back to the event loop can wait a full slice, and an RPC needs several.
# An ad-hoc comparison (tests/bench/run.py's Client at ~550 RPC/s over 2,000 ScaledObjects, one 40 s run
# each, not a repo command) gave p99 58 -> 19 ms on the in-memory source and 97 -> 42 ms on a real
# Prometheus, throughput within run-to-run noise; make bench measures only the tuned setting.
GIL_SWITCH_INTERVAL_S = 0.0005


def tune_process() -> None:
    """Process-wide settings for a serving scaler (called by ``serve``, not by embedders)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


async def serve_forever(options: ServeOptions) -> None:
    """Run until SIGTERM or SIGINT, then drain: NOT_SERVING first, so probes and KEDA move away."""
    tune_process()
    server = ScalerServer(options)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()
