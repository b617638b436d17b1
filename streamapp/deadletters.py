"""The dead-letter topic: what could not be processed, why, the original bytes and where from.

A dead letter is never dropped. One whose original bytes do not fit the topic
(base64 makes anything over ~750 KB too big for a 1 MB producer limit) keeps
them in PostgreSQL (`dead_letter_payloads`), and the topic record names that row.
Sending is retried until the broker (and PostgreSQL) hold the letter.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from streamapp import metrics, publishing
from streamapp.envelope import derived_id, utcnow
from streamapp.logs import position
from streamapp.retry import retry_transient

if TYPE_CHECKING:
    from streamapp.db.pool import Database
    from streamapp.settings import Settings
    from streamapp.typing import Event, Topic

log = logging.getLogger(__name__)

DEAD_LETTER_TOPIC = "streamapp.dead-letters"


class DeadLetter(BaseModel):
    """One dead-lettered message. `value_b64` is the original bytes, untouched."""

    model_config = ConfigDict(frozen=True)

    dead_letter_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    pipeline: str
    reason: str
    detail: str
    event_id: str | None = None
    topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str
    # Set when the original bytes were too large for the topic: they are the
    # `dead_letter_payloads` row of this letter's id, and `value_b64`/`key_b64` are empty.
    payload_in_postgres: bool = False
    failed_at: datetime = Field(default_factory=utcnow)
    # Where `streamapp dead-letters replay` re-injects the original bytes.
    replay_topic: str

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)

    @property
    def key(self) -> bytes | None:
        return base64.b64decode(self.key_b64) if self.key_b64 is not None else None

    @property
    def position(self) -> str:
        return position(self.topic, self.partition, self.offset)

    async def original(self, fetch: PayloadFetcher | None) -> tuple[bytes | None, bytes]:
        """The original (key, value), read from PostgreSQL when the topic could not hold it."""
        if not self.payload_in_postgres:
            return self.key, self.value
        if fetch is None:
            raise LookupError(f"dead letter {self.dead_letter_id} keeps its bytes in PostgreSQL")
        return await fetch(self.dead_letter_id)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> DeadLetter:
        return cls.model_validate_json(raw)


PayloadFetcher = Callable[[uuid.UUID], Awaitable[tuple[bytes | None, bytes]]]

STORE_PAYLOAD = """
INSERT INTO dead_letter_payloads (dead_letter_id, key, value) VALUES ($1, $2, $3)
ON CONFLICT (dead_letter_id) DO NOTHING
"""


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


class Mailroom(Protocol):
    """What sending dead letters needs of the app (`streamapp.host.Host` has it): no more."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def producer(self) -> Any: ...

    @property
    def topic(self) -> Callable[..., Topic]: ...


class DeadLetters:
    """Sends dead letters and returns only once they are durable.

    The wait matters: the failed event is acknowledged right after, so the
    dead letter must be durable first or the event would be lost. Transient
    trouble (broker or PostgreSQL away) is retried for as long as it takes;
    the caller's events stay unacknowledged meanwhile.

    A letter's id derives from where the event was and why it failed, so the
    runtime narrowing a batch down (and so sending a letter twice) or a
    restart replaying it leaves one letter id, which `list` and `replay` dedupe.
    """

    def __init__(self, app: Mailroom) -> None:
        self.app = app
        self.topic = app.topic(DEAD_LETTER_TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw")

    async def send(
        self,
        *,
        pipeline: str,
        reason: str,
        detail: str,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        offset: int | None = None,
        event_id: str | None = None,
        replay_topic: str | None = None,
    ) -> DeadLetter:
        letter = DeadLetter(
            dead_letter_id=derived_id(
                "dead-letter", pipeline, reason, topic, str(partition), str(offset), event_id or ""
            )
            if offset is not None or event_id is not None
            else uuid.uuid4(),
            pipeline=pipeline,
            reason=reason,
            detail=detail[:2000],
            event_id=event_id,
            topic=topic,
            partition=partition,
            offset=offset,
            key_b64=_b64(key),
            value_b64=_b64(value) or "",
            replay_topic=replay_topic or topic,
        )
        encoded = letter.encode()
        if len(encoded) > self.app.settings.dead_letter_max_bytes:
            await self._store_payload(letter.dead_letter_id, key, value)
            letter = letter.model_copy(update={"key_b64": None, "value_b64": "", "payload_in_postgres": True})
            encoded = letter.encode()
        await self._publish(letter, key, encoded)
        metrics.count_dead_letter(pipeline, reason)
        log.warning(
            "dead-lettered %s: %s",
            letter.position,
            reason,
            extra={
                "event_id": event_id,
                "position": letter.position,
                "reason": reason,
                "pipeline": pipeline,
                "detail": letter.detail,
            },
        )
        return letter

    async def _publish(self, letter: DeadLetter, key: bytes | None, encoded: bytes) -> None:
        settings = self.app.settings
        # A key too large for the topic would make the letter itself too large: the
        # letter's id keys it then (the key is kept in the letter or in PostgreSQL).
        topic_key = key if key is not None and len(key) <= 1024 else str(letter.dead_letter_id).encode()
        await retry_transient(
            lambda: publishing.publish_all(
                self.topic, [(topic_key, encoded)], timeout=settings.ingest_ack_timeout
            ),
            what=f"dead letter {letter.dead_letter_id} for {letter.position}",
            initial=settings.retry_initial_backoff,
            maximum=settings.retry_max_backoff,
            extra={"position": letter.position, "event_id": letter.event_id},
        )

    async def _store_payload(self, dead_letter_id: uuid.UUID, key: bytes | None, value: bytes) -> None:
        settings = self.app.settings

        async def store() -> None:
            async with self.app.db.pool.acquire() as conn:
                await conn.execute(STORE_PAYLOAD, dead_letter_id, key, value)

        await retry_transient(
            store,
            what=f"store the payload of dead letter {dead_letter_id}",
            initial=settings.retry_initial_backoff,
            maximum=settings.retry_max_backoff,
        )

    async def send_event(
        self,
        event: Event,
        *,
        pipeline: str,
        reason: str,
        detail: str,
        event_id: str | None = None,
    ) -> DeadLetter:
        """Dead-letter a consumed event, keeping its original bytes and position."""
        message = event.message
        raw_value = message.value if isinstance(message.value, bytes) else event.value
        raw_key = message.key if isinstance(message.key, bytes) else None
        return await self.send(
            pipeline=pipeline,
            reason=reason,
            detail=detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=raw_key,
            value=raw_value if isinstance(raw_value, bytes) else str(raw_value).encode(),
            event_id=event_id,
        )
