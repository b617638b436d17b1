"""Task agents: events -> the task's fact set (table) -> snapshots -> PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from faust.types import TableT

from streamapp.envelope import Envelope
from streamapp.errors import PayloadTooLarge, describe
from streamapp.models.tasks import (
    MAX_EVENTS_PER_TASK,
    TaskFact,
    TaskSnapshot,
    facts_from_table,
    facts_to_table,
)
from streamapp.rules.tasks import task_snapshot
from streamapp.runtime.effects import Effects, Invalid, Output, StateWrite
from streamapp.runtime.runner import BatchRuntime
from streamapp.sink import PostgresSink
from streamapp.stores.tasks import write_snapshots
from streamapp.typing import Event, Topic

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)
PIPELINE = "tasks"


class TaskProcessor:
    """Adds each event to its task's fact set and emits the task's new snapshot.

    A redelivered event is already in the set and changes nothing. The runtime
    acknowledges the snapshots before it writes the table.
    """

    name = "tasks.fold"
    pipeline = PIPELINE
    batch_size = 500
    batch_within = 0.05

    def __init__(self, app: Host, snapshots: Topic, table: TableT[bytes, Any]) -> None:
        self.snapshots = snapshots.get_topic_name()
        self.table = table
        # A snapshot must fit one message (the body limit sits 64 KiB under the producer's).
        self.max_snapshot = app.settings.max_body_bytes
        self.runtime: BatchRuntime[Any] = BatchRuntime(app, self, table=table)

    def plan(self, events: Sequence[Event]) -> Effects[Any]:
        effects: Effects[Any] = Effects()
        changed: dict[bytes, tuple[Event, list[TaskFact]]] = {}
        for event in events:
            envelope: Envelope | None = None
            try:
                envelope = Envelope.decode(event.value)
                fact = TaskFact.model_validate(envelope.payload)
                key = envelope.key.encode()
                facts = changed[key][1] if key in changed else facts_from_table(self.table.get(key))
                if any(f.event_id == fact.event_id for f in facts):
                    continue  # a redelivery: the set already has it
                if len(facts) >= MAX_EVENTS_PER_TASK:
                    raise ValueError(f"task has {len(facts)} events, the most one task may have")
                changed[key] = (event, [*facts, fact])
            except Exception as exc:
                event_id = str(envelope.event_id) if envelope else None
                effects.invalid.append(Invalid(event, describe(exc), event_id))
        for key, (event, facts) in changed.items():
            snapshot = task_snapshot(key.decode(), facts).model_dump_json().encode()
            if len(snapshot) > self.max_snapshot:
                # Found: such a snapshot was refused by the producer and retried forever,
                # stalling every task behind it. Raised, the runtime narrows the batch
                # down to the event that makes the task too large and dead-letters it.
                raise PayloadTooLarge(f"task {key.decode()!r} would grow to {len(snapshot)} bytes")
            effects.outputs.append(Output(self.snapshots, key, snapshot))
            effects.state.append(StateWrite(key, facts_to_table(facts), event.message.partition))
        return effects


def snapshot_sink(app: Host) -> PostgresSink[TaskSnapshot]:
    return PostgresSink(
        app,
        name="tasks.snapshots-sink",
        pipeline=PIPELINE,
        decode=TaskSnapshot.model_validate_json,
        write=write_snapshots,
    )
