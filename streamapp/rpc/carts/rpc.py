"""What every rpc does around its work: a server span, authentication, errors as status codes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from streamapp.errors import StreamappError, describe
from streamapp.models.carts import Caller
from streamapp.rpc.carts.auth import TokenVerifier
from streamapp.rpc.carts.errors import reason, status_code

R = TypeVar("R")
log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

# OpenTelemetry's gRPC conventions: on the server these are failures of ours;
# the others (NOT_FOUND, INVALID_ARGUMENT ...) are the caller's and leave the span unset.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_propagator = TraceContextTextMapPropagator()


class RpcRunner:
    """Runs one rpc's work for an authenticated caller; the tracer is read per call (it starts later)."""

    def __init__(self, verifier: TokenVerifier, tracer: Callable[[], trace.Tracer]) -> None:
        self.verifier = verifier
        self.tracer = tracer

    async def run(self, context: Context, method: str, work: Callable[[Caller], Awaitable[R]]) -> R:
        metadata = tuple(context.invocation_metadata() or ())
        carrier = {key: value for key, value in metadata if isinstance(value, str)}
        service, _, name = method.rpartition("/")
        with self.tracer().start_as_current_span(
            method,
            context=_propagator.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                caller = self.verifier.authenticate(metadata)
                span.set_attribute("enduser.id", str(caller.user_uuid))
                result = await work(caller)
            except asyncio.CancelledError:
                # The client went away or its deadline passed; the transaction rolled back.
                span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.CANCELLED.value[0])
                raise
            except Exception as exc:
                code = status_code(exc)
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                span.set_attribute("error.type", reason(exc))
                if code in _SERVER_FAULTS:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, describe(exc)))
                detail = self._detail(method, code, exc)
                trailers: list[tuple[str, str]] = [("error-reason", reason(exc))]
                if isinstance(exc, StreamappError) and exc.errors:
                    trailers.append(("error-fields", json.dumps(exc.errors)))
                context.set_trailing_metadata(tuple(trailers))
                await context.abort(code, detail)
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
            return result

    @staticmethod
    def _detail(method: str, code: grpc.StatusCode, exc: Exception) -> str:
        if isinstance(exc, StreamappError):
            if code in _SERVER_FAULTS:
                log.warning("%s: %s", method, describe(exc))
            return exc.detail
        if code is grpc.StatusCode.UNAVAILABLE:
            log.warning("%s: dependency unavailable: %s", method, describe(exc))
            return "a dependency (PostgreSQL) is unavailable; retry later"
        log.exception("%s: unexpected error", method)
        return "internal error"
