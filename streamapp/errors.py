"""The exception root, and classification of third-party errors by attribute (never by text)."""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

import asyncpg


class StreamappError(Exception):
    """Root of every error streamapp raises on purpose.

    Class data says how to treat it: `status` is the HTTP answer, `reason` the
    machine-readable code clients switch on, `retriable` whether trying again
    later can succeed (transient infrastructure) or never will (bad data).
    """

    status: ClassVar[int] = 500
    reason: ClassVar[str] = "internal_error"
    retriable: ClassVar[bool] = False

    def __init__(self, detail: str = "", *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason
        self.errors = errors or []

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.reason, "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return body


class MalformedBody(StreamappError):
    status = 400
    reason = "malformed_body"


class Unauthorized(StreamappError):
    status = 401
    reason = "unauthorized"


class Forbidden(StreamappError):
    status = 403
    reason = "forbidden"


class NotFound(StreamappError):
    status = 404
    reason = "not_found"


class PayloadTooLarge(StreamappError):
    status = 413
    reason = "payload_too_large"


class UnsupportedMediaType(StreamappError):
    status = 415
    reason = "unsupported_media_type"


class ValidationFailed(StreamappError):
    status = 422
    reason = "validation_failed"


class Conflict(StreamappError):
    """The request raced another one for the same thing; retrying it is safe."""

    status = 409
    reason = "conflict"


class IdempotencyKeyReused(StreamappError):
    """The Idempotency-Key was already used for a different request body."""

    status = 422
    reason = "idempotency_key_reused"


class TooManyRequests(StreamappError):
    """A caller over its limit; `retry_after` (whole seconds) goes out as the Retry-After header."""

    status = 429
    reason = "too_many_requests"
    retriable = True

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = max(1, math.ceil(retry_after))


class DependencyUnavailable(StreamappError):
    """The broker or the database did not answer; the caller may retry."""

    status = 503
    reason = "dependency_unavailable"
    retriable = True


class ProcessingFailed(StreamappError):
    """An event that can never be processed as it is: it belongs in the dead-letter topic."""

    status = 500
    reason = "processing_failed"


# SQLSTATE classes that mean "the server or the connection, not your data":
# 08 connection exception, 40 transaction rollback (serialization, deadlock),
# 53 insufficient resources, 57 operator intervention (shutdown, cancel), 58 system error.
_RETRIABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_retriable(exc: BaseException) -> bool:
    """Tell transient infrastructure trouble (retry with backoff) from bad data (dead-letter)."""
    if isinstance(exc, StreamappError):
        return exc.retriable
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in _RETRIABLE_SQLSTATE_CLASSES
    # asyncpg's InterfaceError (pool closing, connection lost mid-call) has no SQLSTATE.
    if isinstance(exc, asyncpg.InterfaceError):
        return True
    # aiokafka's KafkaError carries `retriable` as class data.
    return bool(getattr(exc, "retriable", False))


def is_data_exception(exc: BaseException) -> bool:
    """SQLSTATE class 22: PostgreSQL refused a value itself (NUL in text, a bad cast, out of range).

    From a view's query that is the caller's input, never the server's fault.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def describe(exc: BaseException) -> str:
    """`Type: message` for dead letters and logs (pydantic's repr omits the type)."""
    return f"{type(exc).__name__}: {exc}"


class InvalidSettings(StreamappError):
    """The settings cannot start a worker; `problems` has one line each, naming the variable."""

    reason = "invalid_settings"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
