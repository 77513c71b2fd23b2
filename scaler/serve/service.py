"""The gRPC edge: KEDA's ``externalscaler.ExternalScaler`` served from the refresher's snapshot.

Contract (see ../shared/KEDA.md): one metric per trigger with target 1; its value is the desired
replica count, so the HPA's ``ceil(value / target)`` is exactly our decision. Bad metadata is
INVALID_ARGUMENT naming the key; no data, stale data or a source down is UNAVAILABLE, which KEDA
counts toward its ``fallback`` and which never scales a fleet to zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError

from scaler._generated import externalscaler_pb2 as pb
from scaler._generated import externalscaler_pb2_grpc as pb_grpc
from scaler.core.config import ConfigError
from scaler.core.decision import Decision
from scaler.core.promql import NAMESPACE_LABELS
from scaler.core.target import Target
from scaler.serve.refresher import Entry, Refresher, Unavailable
from scaler.serve.targets import TargetCache

log = logging.getLogger("scaler.serve.service")

T = TypeVar("T")
Ctx = grpc.aio.ServicerContext[Any, Any]

# The HPA's target: the metric value *is* the replica count (KEDA.md: "target 1, value = desired").
METRIC_TARGET = 1.0
# IsActive has two answers; messages are immutable once built, so every call returns one of these.
_ACTIVE = {True: pb.IsActiveResponse(result=True), False: pb.IsActiveResponse(result=False)}


def metric_name(target: Target) -> str:
    """The metric's name; KEDA exposes it to the HPA as ``s<trigger index>-<this>``."""
    return f"llm-{target.config.deployment}"


class ExternalScalerService(pb_grpc.ExternalScalerServicer):
    def __init__(self, refresher: Refresher, namespace_labels: tuple[str, ...] = NAMESPACE_LABELS) -> None:
        self.refresher = refresher
        self.telemetry = refresher.telemetry
        self.namespace_labels = namespace_labels
        self.targets = TargetCache(namespace_labels)
        # Bound once: labels() checks and locks on every call, two of them per KEDA poll.
        methods = pb.DESCRIPTOR.services_by_name["ExternalScaler"].methods
        self._rpc_duration = {m.name: self.telemetry.rpc_duration.labels(m.name) for m in methods}

    async def _call(self, method: str, context: Ctx, body: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await body()
        except ConfigError as exc:
            self.telemetry.rpc_errors.labels(method, "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Unavailable as exc:
            self.telemetry.rpc_errors.labels(method, "UNAVAILABLE").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            self._rpc_duration[method].observe(time.perf_counter() - started)
        raise AssertionError("unreachable: context.abort raises")

    def _target(self, ref: pb.ScaledObjectRef) -> Target:
        return self.targets.get(ref)

    async def GetMetricSpec(self, request: pb.ScaledObjectRef, context: Ctx) -> pb.GetMetricSpecResponse:
        async def body() -> pb.GetMetricSpecResponse:
            target = self._target(request)
            # Registering here means the first GetMetrics already has data (KEDA calls this first).
            await self.refresher.ensure(target)
            spec = pb.MetricSpec(
                metricName=metric_name(target), targetSize=int(METRIC_TARGET), targetSizeFloat=METRIC_TARGET
            )
            return pb.GetMetricSpecResponse(metricSpecs=[spec])

        return await self._call("GetMetricSpec", context, body)

    async def GetMetrics(self, request: pb.GetMetricsRequest, context: Ctx) -> pb.GetMetricsResponse:
        async def body() -> pb.GetMetricsResponse:
            target = self._target(request.scaledObjectRef)
            expected = metric_name(target)
            # KEDA strips its "s<i>-" prefix before calling; accept either form, refuse anything else.
            asked = request.metricName
            if (
                asked
                and asked != expected
                and not (asked.startswith("s") and asked.split("-", 1)[-1] == expected)
            ):
                raise ConfigError(
                    "metricName", f"unknown metric {asked[:80]!r}; this trigger serves {expected!r}"
                )
            entry = await self.refresher.ensure(target)
            return _metrics_response(entry, self.refresher.answer(entry), expected)

        return await self._call("GetMetrics", context, body)

    async def IsActive(self, request: pb.ScaledObjectRef, context: Ctx) -> pb.IsActiveResponse:
        async def body() -> pb.IsActiveResponse:
            target = self._target(request)
            decision = self.refresher.answer(await self.refresher.ensure(target))
            return _ACTIVE[decision.active]

        return await self._call("IsActive", context, body)

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: Ctx
    ) -> AsyncIterator[pb.IsActiveResponse]:
        """Push the current state at once, then every change of it, without waiting for KEDA's poll."""
        try:
            target = self._target(request)
            entry = await self.refresher.ensure(target)
        except ConfigError as exc:
            self.telemetry.rpc_errors.labels("StreamIsActive", "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        queue = self.refresher.subscribe(entry)
        try:
            last: bool | None = None
            decision = entry.decision
            while True:
                if decision is not None and decision.valid and decision.active != last:
                    last = decision.active
                    yield pb.IsActiveResponse(result=last)
                decision = await queue.get()
        finally:
            self.refresher.unsubscribe(entry, queue)

    async def StreamMetricSpec(
        self, request: pb.ScaledObjectRef, context: Ctx
    ) -> AsyncIterator[pb.GetMetricSpecResponse]:
        # Our target never changes (it is always 1), so there is nothing to push; KEDA falls back silently.
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "StreamMetricSpec: the metric target is fixed at 1"
        )
        yield pb.GetMetricSpecResponse()  # pragma: no cover - makes this an async generator


def _metrics_response(entry: Entry, decision: Decision, metric: str) -> pb.GetMetricsResponse:
    """GetMetrics' answer for ``decision``, built on the first call after each refresh and reused until
    the next: the memo is keyed by the decision itself, so it is never older than the snapshot (a new
    refresh puts a new Decision on the entry, and ``refresher.answer`` still checks staleness on every
    call), and by the metric name, which changes with the Deployment."""
    memo = entry.response_memo
    if memo is not None and memo[0] is decision and memo[1] == metric:
        return cast(pb.GetMetricsResponse, memo[2])
    value = pb.MetricValue(
        metricName=metric,
        metricValue=decision.desired_replicas,
        metricValueFloat=float(decision.desired_replicas),
    )
    response = pb.GetMetricsResponse(metricValues=[value])
    entry.response_memo = (decision, metric, response)
    return response


def _decoding_unary(
    name: str, message: Any, method: Callable[[Any, Ctx], Awaitable[Any]], telemetry: Any
) -> Callable[[bytes, Ctx], Awaitable[Any]]:
    async def handler(raw: bytes, context: Ctx) -> Any:
        try:
            request = message.FromString(raw)
        except DecodeError as exc:
            telemetry.rpc_errors.labels(name, "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _undecodable(name, message, exc))
        return await method(request, context)

    return handler


def _decoding_stream(
    name: str, message: Any, method: Callable[[Any, Ctx], AsyncIterator[Any]], telemetry: Any
) -> Callable[[bytes, Ctx], AsyncIterator[Any]]:
    async def handler(raw: bytes, context: Ctx) -> AsyncIterator[Any]:
        try:
            request = message.FromString(raw)
        except DecodeError as exc:
            telemetry.rpc_errors.labels(name, "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _undecodable(name, message, exc))
            return
        async for item in method(request, context):
            yield item

    return handler


def _undecodable(name: str, message: Any, exc: Exception) -> str:
    return f"{name}: the request is not a valid {message.DESCRIPTOR.full_name} message ({exc})"


def add_to_server(servicer: ExternalScalerService, server: grpc.aio.Server) -> None:
    """Register the service like the generated ``add_ExternalScalerServicer_to_server``, but decode requests
    in the handler: bytes that are not the proto message get INVALID_ARGUMENT saying so, where grpc's own
    decoding would answer UNKNOWN and log a traceback per bad request."""
    service = pb.DESCRIPTOR.services_by_name["ExternalScaler"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for m in service.methods:
        request, response = getattr(pb, m.input_type.name), getattr(pb, m.output_type.name)
        method = getattr(servicer, m.name)
        if m.server_streaming:
            handlers[m.name] = grpc.unary_stream_rpc_method_handler(
                _decoding_stream(m.name, request, method, servicer.telemetry),
                response_serializer=response.SerializeToString,
            )
        else:
            handlers[m.name] = grpc.unary_unary_rpc_method_handler(
                _decoding_unary(m.name, request, method, servicer.telemetry),
                response_serializer=response.SerializeToString,
            )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    # As the generated code does: registered methods are matched by grpc's core when the call arrives,
    # instead of by asking each generic handler in Python.
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]
