"""Error classification by attribute: status, reason, retriable."""

from __future__ import annotations

import aiokafka.errors
import asyncpg
import faust.exceptions
import pytest

from streamapp.errors import (
    DependencyUnavailable,
    MalformedBody,
    PayloadTooLarge,
    ValidationFailed,
    describe,
    is_retriable,
)


def test_errors_carry_status_and_reason() -> None:
    exc = ValidationFailed("bad", errors=[{"field": "x"}])
    assert (exc.status, exc.reason) == (422, "validation_failed")
    assert exc.to_json() == {
        "error": "validation_failed",
        "detail": "bad",
        "errors": [{"field": "x"}],
    }
    assert MalformedBody().to_json() == {"error": "malformed_body", "detail": "malformed_body"}
    assert PayloadTooLarge.status == 413


def wrapped(cause: BaseException) -> faust.exceptions.ProducerSendError:
    try:
        raise faust.exceptions.ProducerSendError(f"Error while sending: {cause!r}") from cause
    except faust.exceptions.ProducerSendError as exc:
        return exc


class FakePgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


class KafkaLike(Exception):
    retriable = True


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (DependencyUnavailable(), True),
        (ValidationFailed(), False),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (FakePgError("08006"), True),  # connection failure
        (FakePgError("40001"), True),  # serialization failure
        (FakePgError("57P01"), True),  # admin shutdown
        (FakePgError("22021"), False),  # bad byte sequence: the data, not the server
        (FakePgError("23505"), False),  # unique violation
        (asyncpg.InterfaceError("pool is closing"), True),
        (KafkaLike(), True),
        (ValueError("x"), False),
        # Found: every producer error became a retriable 503, so a message too large
        # for the broker was retried forever and stalled its agent.
        (aiokafka.errors.MessageSizeTooLargeError(), False),
        (aiokafka.errors.RecordTooLargeError(), False),
        (aiokafka.errors.InvalidTopicError(), False),
        (PayloadTooLarge(), False),
        # Transient: never dead-letter on these.
        (aiokafka.errors.KafkaTimeoutError(), True),  # its class says retriable=False
        (aiokafka.errors.KafkaConnectionError(), True),
        (aiokafka.errors.NotLeaderForPartitionError(), True),
        (aiokafka.errors.ProducerClosed(), True),
        (FakePgError("28P01"), True),  # password rotated, not yet everywhere
        (FakePgError("25006"), True),  # read-only: a replica during failover
        (FakePgError("22001"), False),  # value too long: the data
        (faust.exceptions.NotReady("Producer service not yet started"), True),
        # Faust's producer wraps what aiokafka's send raises: judged by the cause.
        (wrapped(aiokafka.errors.KafkaTimeoutError()), True),
        (wrapped(aiokafka.errors.MessageSizeTooLargeError()), False),
        (faust.exceptions.ProducerSendError("no cause"), True),
    ],
)
def test_is_retriable(exc: BaseException, retriable: bool) -> None:
    assert is_retriable(exc) is retriable


def test_describe_names_the_type() -> None:
    assert describe(ValueError("boom")) == "ValueError: boom"
