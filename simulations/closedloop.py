"""The closed loop across the real boundary: the scaler's real gRPC server (``scaler.serve.server``) on
loopback, fed by the simulator's ``MemorySource`` and clocked by simulated time, called by the KEDA/HPA
model over real gRPC (GetMetricSpec, GetMetrics, IsActive, StreamIsActive) with the stubs generated from
KEDA's proto. Simulated time only moves when the simulator moves it: each refresh tick runs
``server.refresher.refresh_all()`` on the server's loop and waits for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from scaler._generated import externalscaler_pb2 as pb
from scaler._generated import externalscaler_pb2_grpc as pb_grpc
from scaler.serve.server import ScalerThread, ServeOptions
from scaler.sources.source import Source
from simulations.controlplane import ScrapeStore
from simulations.fleet import Fleet
from simulations.policy import KEY, NAMESPACE, SCALEDOBJECT, ScalerPolicy

PUSH_TIMEOUT_S = 10.0
RPC_TIMEOUT_S = 10.0
# Only used to name the source: the memory source answers for any URL.
SIM_PROMETHEUS_URL = "http://prometheus.sim.invalid:9090"


def start_server(source_for: Callable[[str], Source], clock: Callable[[], float]) -> ScalerThread:
    """The real ScalerServer on its own asyncio loop in a background thread, clocked by simulated time."""
    options = ServeOptions(
        grpc_port=0,
        metrics_port=-1,
        bind_address="127.0.0.1",
        prometheus_url=SIM_PROMETHEUS_URL,
        refresh_s=1e9,  # no wall-clock refreshes: the simulator drives refresh_all itself
    )
    return ScalerThread(options, source_for=source_for, clock=clock, grace_s=0.5).start()


@dataclass
class GrpcScalerPolicy(ScalerPolicy):
    """``scaler`` with every KEDA call made over loopback gRPC to the real server."""

    runner: ScalerThread | None = None
    rpc_calls: dict[str, int] = field(default_factory=dict)

    def attach(self, fleet: Fleet, store: ScrapeStore) -> None:
        super().attach(fleet, store)
        source = self.source
        assert source is not None
        self.runner = start_server(source_for=lambda url: source, clock=lambda: self.now_s)
        self.channel = grpc.insecure_channel(self.runner.address)
        self.stub = pb_grpc.ExternalScalerStub(self.channel)  # type: ignore[no-untyped-call]
        self.ref = pb.ScaledObjectRef(name=SCALEDOBJECT, namespace=NAMESPACE, scalerMetadata=self.metadata)
        spec = self._rpc("GetMetricSpec", self.stub.GetMetricSpec, self.ref)
        self.metric_name = spec.metricSpecs[0].metricName
        self._pushes: queue.Queue[bool] = queue.Queue()
        self._stream = self.stub.StreamIsActive(self.ref)
        self._reader = threading.Thread(target=self._read_stream, daemon=True, name="stream-is-active")
        self._reader.start()
        entry = self.runner.server.refresher.entries[KEY]
        if entry.decision is not None and entry.decision.valid:  # the stream sends the state on connect
            self.pushed = self._pushes.get(timeout=PUSH_TIMEOUT_S)

    def _read_stream(self) -> None:
        try:
            for msg in self._stream:
                self._pushes.put(bool(msg.result))
        except grpc.RpcError:
            pass  # cancelled at close

    def _rpc(self, name: str, fn: Any, request: Any) -> Any:
        self.rpc_calls[name] = self.rpc_calls.get(name, 0) + 1
        return fn(request, timeout=RPC_TIMEOUT_S)

    def refresh(self, t_s: float) -> None:
        assert self.runner is not None
        self.runner.call(self.runner.server.refresher.refresh_all).result(timeout=60)
        # Kept for the report only; KEDA's model below sees nothing but RPC answers.
        self.decision = self.runner.server.refresher.entries[KEY].decision
        if self.decision is not None:
            self.decisions.append((t_s, self.decision))

    def metric(self, t_s: float) -> float | None:
        req = pb.GetMetricsRequest(scaledObjectRef=self.ref, metricName=self.metric_name)
        try:
            resp = self._rpc("GetMetrics", self.stub.GetMetrics, req)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return None  # KEDA: an error; the HPA keeps the current count
            raise
        v = resp.metricValues[0]
        # KEDA: metricValueFloat if > 0, else metricValue.
        return float(v.metricValueFloat) if v.metricValueFloat > 0 else float(v.metricValue)

    def is_active(self, t_s: float) -> bool | None:
        try:
            return bool(self._rpc("IsActive", self.stub.IsActive, self.ref).result)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return None
            raise

    def take_push(self, t_s: float) -> bool | None:
        """A push arrives exactly when the server's activity changed; wait for it so the run is
        deterministic (the decision is read only to know whether to wait, never for its value)."""
        d = self.decision
        if d is not None and d.valid and d.active != self.pushed:
            self.pushed = self._pushes.get(timeout=PUSH_TIMEOUT_S)
            self.pushes += 1
            return self.pushed
        return None

    def close(self) -> None:
        if self.runner is None:
            return
        self._stream.cancel()
        self.channel.close()
        self._reader.join(timeout=5)
        self.runner.stop()
        self.runner = None
