"""Batched, idempotent PostgreSQL sinks: a processor whose only effect is rows, run by the runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from streamapp.errors import describe
from streamapp.logs import position
from streamapp.runtime.effects import Effects, Invalid
from streamapp.runtime.runner import BatchRuntime, Writer
from streamapp.typing import Event

if TYPE_CHECKING:
    from streamapp.host import Host

T = TypeVar("T")


def event_position(event: Event) -> str:
    message = event.message
    return position(message.topic, message.partition, message.offset)


class PostgresSink(Generic[T]):
    """A sink agent's body: drains a stream of encoded rows into PostgreSQL in batches.

    `write` must be idempotent (upserts keyed by stable ids): Kafka redelivers
    after a crash, and a batch retried after a lost COMMIT reply runs twice.
    Events that do not decode are dead-lettered (`invalid`); rows PostgreSQL
    refuses are narrowed down by the runtime and dead-lettered (`rejected`)
    while their batch-mates land.
    """

    def __init__(
        self,
        app: Host,
        *,
        name: str,
        pipeline: str,
        decode: Callable[[bytes], T],
        write: Writer,
    ) -> None:
        self.name = name
        self.pipeline = pipeline
        self.decode = decode
        self.batch_size = app.settings.sink_batch_size
        self.batch_within = app.settings.sink_batch_within
        self.runtime: BatchRuntime[T] = BatchRuntime(app, self, write=write)

    def plan(self, events: Sequence[Event]) -> Effects[T]:
        effects: Effects[T] = Effects()
        for event in events:
            try:
                effects.rows.append(self.decode(event.value))
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc)))
        return effects
