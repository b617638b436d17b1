"""The exception root, and classification of third-party errors by attribute (never by text)."""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

import aiokafka.errors
import asyncpg
import faust.exceptions


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
# 08 connection exception, 28 invalid authorization (28P01 while a rotated password
# propagates), 40 transaction rollback (serialization, deadlock), 53 insufficient
# resources, 57 operator intervention (shutdown, cancel), 58 system error.
_RETRIABLE_SQLSTATE_CLASSES = frozenset({"08", "28", "40", "53", "57", "58"})
# Single codes of otherwise permanent classes: 25006 read-only transaction (we hit a
# replica during a failover), 55P03 lock not available, 55006 object in use.
_RETRIABLE_SQLSTATES = frozenset({"25006", "55P03", "55006"})

# Broker errors that no retry can cure: the message itself is wrong for the topic.
# Every other Kafka error (connection, timeout, not leader, authorization while a
# config is being fixed ...) is the broker's and is retried, never dead-lettered at once.
_PERMANENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (
    aiokafka.errors.MessageSizeTooLargeError,
    aiokafka.errors.RecordTooLargeError,
    aiokafka.errors.InvalidTopicError,
    aiokafka.errors.CorruptRecordException,
    aiokafka.errors.UnsupportedCodecError,
)


def unwrap(exc: BaseException) -> BaseException:
    """The error itself, out of the wrappers that hide its type.

    Faust's producer wraps every Kafka error `send` raises (a message too large,
    a full buffer timing out ...) in `ProducerSendError`, which says nothing about
    whether a retry can help: its cause does.
    """
    while isinstance(exc, faust.exceptions.ProducerSendError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_retriable(exc: BaseException) -> bool:
    """Tell transient infrastructure trouble (retry with backoff) from bad data (dead-letter)."""
    exc = unwrap(exc)
    if isinstance(exc, faust.exceptions.ProducerSendError):
        return True  # no cause to judge by: the producer's, not the data's
    if isinstance(exc, StreamappError):
        return exc.retriable
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in _RETRIABLE_SQLSTATE_CLASSES or sqlstate in _RETRIABLE_SQLSTATES
    # asyncpg's InterfaceError (pool closing, connection lost mid-call) has no SQLSTATE.
    if isinstance(exc, asyncpg.InterfaceError):
        return True
    # Faust's services refuse work while starting or stopping (the producer between
    # a rebalance's stop and start): the same call succeeds a moment later.
    if isinstance(exc, faust.exceptions.NotReady):
        return True
    if isinstance(exc, _PERMANENT_KAFKA_ERRORS):
        return False
    if isinstance(exc, aiokafka.errors.KafkaError):
        return True
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


class CannotStart(StreamappError):
    """A command cannot start (port taken, broker unreachable); `detail` is one line saying what to do."""

    reason = "cannot_start"
