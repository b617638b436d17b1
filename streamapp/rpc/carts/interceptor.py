"""A grpc.aio server interceptor that counts and times every unary call by method and status code."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from streamapp import metrics

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


if TYPE_CHECKING:
    Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # generic in grpc-stubs only
    Interceptor = grpc.aio.ServerInterceptor


class MetricsInterceptor(Interceptor):
    """Wraps unary-unary handlers (every carts rpc and the health check).

    Streaming ones (reflection, health Watch) pass through uncounted: a stream's
    duration says nothing about latency.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            # grpc-stubs types the behaviour as synchronous; on a grpc.aio server it is a coroutine.
            observed(handler_call_details.method, handler.unary_unary),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def observed(method: str, behavior: Behavior) -> Behavior:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            response = await behavior(request, context)
            code = context.code() or grpc.StatusCode.OK
            return response
        except BaseException:
            # `context.abort` raises after setting the code; anything else is UNKNOWN to the caller.
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            metrics.observe_grpc(method, _name(code), time.perf_counter() - started)

    return call


def _name(code: Any) -> str:
    # `context.code()` gives a StatusCode once set, though some grpc versions give its int value.
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return str(code)
