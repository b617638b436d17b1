"""The dead-letter topic: what could not be processed, why, the original bytes and where from."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from streamapp.envelope import utcnow
from streamapp.logs import position

if TYPE_CHECKING:
    import faust

    from streamapp.typing import Event

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

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> DeadLetter:
        return cls.model_validate_json(raw)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


class DeadLetters:
    """Sends dead letters and waits until the broker has them.

    The wait matters: the failed event is acknowledged right after, so the
    dead letter must be durable first or the event would be lost.
    """

    def __init__(self, app: faust.App) -> None:
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
        fut = await self.topic.send(key=key, value=letter.encode())
        await fut
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
