"""gRPC status codes for streamapp's errors, read from their class data (never from messages)."""

from __future__ import annotations

import grpc

from streamapp.errors import StreamappError, is_retriable

# Our HTTP statuses and the gRPC codes that mean the same (google.rpc code mapping).
_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_code(exc: BaseException) -> grpc.StatusCode:
    """UNAVAILABLE for anything transient (the client may retry), INTERNAL for the unexpected."""
    if isinstance(exc, StreamappError):
        return _BY_HTTP_STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
    if is_retriable(exc):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def reason(exc: BaseException) -> str:
    if isinstance(exc, StreamappError):
        return exc.reason
    return "dependency_unavailable" if is_retriable(exc) else "internal_error"
