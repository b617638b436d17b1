"""Dead letters: durable before they return, retried, and never dropped for their size."""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any, cast

import aiokafka.errors
import pytest

from streamapp.app import StreamApp
from streamapp.deadletter_cli import read_dead_letters
from streamapp.deadletters import DeadLetter, DeadLetters
from streamapp.settings import Settings


class Broker:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.sent: list[tuple[bytes, bytes]] = []

    async def publish_all(self, topic: Any, messages: Sequence[tuple[bytes, bytes]], **_: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.extend(messages)


class Database:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, tuple[bytes | None, bytes]] = {}

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async def execute(sql: str, letter_id: uuid.UUID, key: bytes | None, value: bytes) -> None:
            assert "dead_letter_payloads" in sql
            self.rows.setdefault(letter_id, (key, value))

        yield SimpleNamespace(execute=execute)


def dead_letters(broker: Broker, db: Database, monkeypatch: pytest.MonkeyPatch) -> DeadLetters:
    monkeypatch.setattr("streamapp.ingest.publish_all", broker.publish_all)
    app = SimpleNamespace(
        settings=Settings(retry_initial_backoff=0.001, retry_max_backoff=0.002, dead_letter_max_bytes=4096),
        db=SimpleNamespace(pool=db),
        topic=lambda *a, **k: SimpleNamespace(get_topic_name=lambda: "streamapp.dead-letters"),
    )
    return DeadLetters(cast(StreamApp, app))


async def send(letters: DeadLetters, value: bytes, key: bytes = b"k") -> DeadLetter:
    return await letters.send(
        pipeline="licenses", reason="rejected", detail="x", topic="licenses.inbound",
        value=value, key=key, partition=1, offset=42,
    )  # fmt: skip


async def test_an_oversized_letter_keeps_its_bytes_in_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: base64 made any event over ~750 KB too big for the producer; the letter was lost."""
    broker, db = Broker([]), Database()
    letters = dead_letters(broker, db, monkeypatch)
    big = bytes(range(256)) * 40  # 10 KB, over the 4 KB cap of this test
    letter = await send(letters, big, key=b"customer-1")
    assert letter.payload_in_postgres
    assert db.rows[letter.dead_letter_id] == (b"customer-1", big)
    [(_, published)] = broker.sent
    assert len(published) < 4096
    on_topic = DeadLetter.decode(published)
    assert on_topic.value_b64 == ""
    assert await on_topic.original(lambda i: _fetch(db, i)) == (b"customer-1", big)


async def _fetch(db: Database, letter_id: uuid.UUID) -> tuple[bytes | None, bytes]:
    return db.rows[letter_id]


async def test_a_broker_outage_is_retried_until_the_letter_is_durable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker([aiokafka.errors.KafkaConnectionError(), aiokafka.errors.KafkaTimeoutError()])
    letters = dead_letters(broker, Database(), monkeypatch)
    letter = await send(letters, b"small")
    assert [DeadLetter.decode(v).dead_letter_id for _, v in broker.sent] == [letter.dead_letter_id]


async def test_the_same_failure_at_the_same_position_has_one_id(monkeypatch: pytest.MonkeyPatch) -> None:
    letters = dead_letters(Broker([]), Database(), monkeypatch)
    first, again = await send(letters, b"v"), await send(letters, b"v")
    assert first.dead_letter_id == again.dead_letter_id


async def test_reading_letters_without_a_broker_closes_its_consumer() -> None:
    """Found: `read_dead_letters` (the CLI's `list`/`replay`, the dashboard's list) left its
    consumer open when the broker did not answer: its start raised before the `try`, and
    aiokafka complained about an unclosed consumer at garbage collection."""
    settings = Settings(broker_url="kafka://127.0.0.1:1")
    with pytest.raises(aiokafka.errors.KafkaConnectionError):
        async for _ in read_dead_letters(settings):
            pass
    gc.collect()  # an unclosed consumer's __del__ warns now: an error under filterwarnings
