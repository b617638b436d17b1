"""Batched, idempotent PostgreSQL sinks: retry transient errors, isolate and dead-letter bad rows."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import asyncpg

from streamapp.batching import for_each_batch
from streamapp.errors import describe
from streamapp.logs import position
from streamapp.retry import retry_transient
from streamapp.typing import Event, Stream

if TYPE_CHECKING:
    from streamapp.app import StreamApp

T = TypeVar("T")
log = logging.getLogger(__name__)

Writer = Callable[[asyncpg.Connection, Sequence[T]], Awaitable[None]]


def event_position(event: Event) -> str:
    message = event.message
    return position(message.topic, message.partition, message.offset)


Rejecter = Callable[[Event, T, Exception], Awaitable[None]]


class PostgresWriter(Generic[T]):
    """Writes rows to PostgreSQL in one transaction per batch; isolates the rows it refuses.

    `write` must be idempotent (upserts keyed by stable ids): Kafka redelivers
    after a crash, and a batch retried after a lost COMMIT reply runs twice.
    Transient errors (connection lost, serialization failure ...) are retried with
    backoff for as long as it takes: the caller's events stay unacknowledged, and
    that is the backpressure. A permanent error (the data itself) splits the
    batch: every row is written alone, and the ones PostgreSQL refuses go to
    `reject` (a dead letter) while their batch-mates land.
    """

    def __init__(self, app: StreamApp, *, name: str, pipeline: str, write: Writer[T]) -> None:
        self.app = app
        self.name = name
        self.pipeline = pipeline
        self.write = write
        # Called after each written batch (e.g. to wake a scheduler up).
        self.after_write: Callable[[], None] | None = None

    async def write_rows(self, rows: Sequence[tuple[Event, T]], reject: Rejecter[T]) -> None:
        """Write `rows` (each with the event it came from); hand refused ones to `reject`."""
        if not rows:
            return
        try:
            await self._write([item for _, item in rows])
        except Exception as exc:
            log.warning(
                "%s: batch of %d rejected (%r); writing one by one to isolate the bad rows",
                self.name,
                len(rows),
                exc,
            )
            for event, item in rows:
                try:
                    await self._write([item])
                except Exception as row_exc:
                    await reject(event, item, row_exc)
        if self.after_write is not None:
            self.after_write()

    async def _write(self, items: Sequence[T]) -> None:
        async def attempt() -> None:
            async with self.app.db.pool.acquire() as conn, conn.transaction():
                await self.write(conn, items)

        await retry_transient(
            attempt,
            what=f"{self.name} write of {len(items)}",
            initial=self.app.settings.retry_initial_backoff,
            maximum=self.app.settings.retry_max_backoff,
        )


class PostgresSink(PostgresWriter[T]):
    """A sink agent's body: drains a stream of encoded rows into PostgreSQL in batches.

    The checkpoint order is the one quix-streams documents: the batch is
    committed in PostgreSQL before its events are acknowledged, so a crash
    replays rather than loses. Events that do not decode, and rows PostgreSQL
    refuses, are dead-lettered with their original bytes.
    """

    def __init__(
        self,
        app: StreamApp,
        *,
        name: str,
        pipeline: str,
        decode: Callable[[bytes], T],
        write: Writer[T],
    ) -> None:
        super().__init__(app, name=name, pipeline=pipeline, write=write)
        self.decode = decode

    async def run(self, stream: Stream) -> None:
        settings = self.app.settings
        await for_each_batch(
            stream, settings.sink_batch_size, settings.sink_batch_within, self.handle, self.name
        )

    async def handle(self, events: Sequence[Event]) -> None:
        decoded: list[tuple[Event, T]] = []
        for event in events:
            try:
                decoded.append((event, self.decode(event.value)))
            except Exception as exc:
                await self.app.dead_letters.send_event(
                    event, pipeline=self.pipeline, reason="undecodable", detail=describe(exc)
                )
        await self.write_rows(decoded, self._reject)

    async def _reject(self, event: Event, item: T, exc: Exception) -> None:
        await self.app.dead_letters.send_event(
            event, pipeline=self.pipeline, reason="sink_rejected", detail=describe(exc)
        )
