"""The scaler's real gRPC server, run on its own asyncio loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from prometheus_client import CollectorRegistry

from scaler.refresher import Source
from scaler.server import ScalerServer, ServeOptions


class ScalerThread:
    """Start with ``start()``; ``call(coro_fn)`` runs a coroutine on the server's loop; ``stop()``."""

    def __init__(
        self,
        options: ServeOptions,
        source_for: Callable[[str], Source] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.loop = asyncio.new_event_loop()
        self.server = ScalerServer(options, registry=self.registry, source_for=source_for, clock=clock)
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
        self.call(lambda: self.server.stop(grace_s=1.0)).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
