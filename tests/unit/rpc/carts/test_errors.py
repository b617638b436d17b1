"""gRPC status codes come from error class data, never from messages."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from streamapp.errors import (
    DependencyUnavailable,
    Forbidden,
    MalformedBody,
    NotFound,
    StreamappError,
    Unauthorized,
    ValidationFailed,
)
from streamapp.models.carts import FailedPrecondition
from streamapp.rpc.carts.errors import reason, status_code


@pytest.mark.parametrize(
    ("exc", "code", "why"),
    [
        (ValidationFailed("x"), grpc.StatusCode.INVALID_ARGUMENT, "validation_failed"),
        (MalformedBody("x"), grpc.StatusCode.INVALID_ARGUMENT, "malformed_body"),
        (Unauthorized("x"), grpc.StatusCode.UNAUTHENTICATED, "unauthorized"),
        (Forbidden("x"), grpc.StatusCode.PERMISSION_DENIED, "forbidden"),
        (NotFound("x"), grpc.StatusCode.NOT_FOUND, "not_found"),
        (FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION, "failed_precondition"),
        (DependencyUnavailable("x"), grpc.StatusCode.UNAVAILABLE, "dependency_unavailable"),
        (StreamappError("x"), grpc.StatusCode.INTERNAL, "internal_error"),
        (ConnectionRefusedError(), grpc.StatusCode.UNAVAILABLE, "dependency_unavailable"),
        (asyncpg.exceptions.CannotConnectNowError(), grpc.StatusCode.UNAVAILABLE, "dependency_unavailable"),
        (asyncpg.exceptions.UniqueViolationError(), grpc.StatusCode.INTERNAL, "internal_error"),
        (KeyError("x"), grpc.StatusCode.INTERNAL, "internal_error"),
    ],
)
def test_status_codes(exc: Exception, code: grpc.StatusCode, why: str) -> None:
    assert status_code(exc) is code
    assert reason(exc) == why
