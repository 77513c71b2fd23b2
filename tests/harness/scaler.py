"""The scaler as the integration tests run it: a ScalerThread on loopback against one real Prometheus."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from scaler.serve.server import ScalerThread, ServeOptions


@contextlib.contextmanager
def loopback_scaler(prometheus_url: str, rate_window: str = "10s", **options: Any) -> Iterator[ScalerThread]:
    """A started ScalerThread on 127.0.0.1 (ephemeral gRPC and metrics ports) that refreshes every 0.5 s
    on a 1 s history step, so a test sees a change within seconds; stopped on exit. ``options``: other
    ServeOptions fields (e.g. ``auth``), or these overridden."""
    defaults = ServeOptions(
        grpc_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        prometheus_url=prometheus_url,
        refresh_s=0.5,
        history_step_s=1.0,
        rate_window=rate_window,
        staleness_s=30,
    )
    s = ScalerThread(dataclasses.replace(defaults, **options)).start()
    try:
        yield s
    finally:
        s.stop()
