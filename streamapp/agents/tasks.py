"""Task agents: events -> the task's fact set (table) -> snapshots -> PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
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

    name = "tasks.events"
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


UPSERT_TASKS = """
INSERT INTO tasks AS t (task_id, user_id, content, status, created_at, completed_at, deleted_at,
                        last_event_at, fact_count)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                     $7::timestamptz[], $8::timestamptz[], $9::int[])
ON CONFLICT (task_id) DO UPDATE SET
    user_id = excluded.user_id, content = excluded.content, status = excluded.status,
    created_at = excluded.created_at, completed_at = excluded.completed_at,
    deleted_at = excluded.deleted_at, last_event_at = excluded.last_event_at,
    fact_count = excluded.fact_count, changed_at = clock_timestamp()
-- Facts only accumulate: a snapshot with fewer of them is an old one being replayed.
WHERE t.fact_count < excluded.fact_count
RETURNING task_id
"""

INSERT_TRANSITIONS = """
INSERT INTO task_transitions (task_id, seq, user_id, kind, at, content, event_id)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::uuid[])
"""

UPSERT_EVENTS = """
INSERT INTO task_events AS e (event_id, task_id, event, ts, status, reason, late, received_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                     $7::bool[], $8::timestamptz[])
ON CONFLICT (event_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, late = excluded.late
WHERE (e.status, e.reason, e.late) IS DISTINCT FROM (excluded.status, excluded.reason, excluded.late)
"""


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)] if rows else [[] for _ in range(width)]


async def write_snapshots(conn: asyncpg.Connection, snapshots: Sequence[TaskSnapshot]) -> None:
    """Set-based: four statements per batch whatever its size."""
    latest: dict[str, TaskSnapshot] = {}
    for snap in snapshots:
        if snap.task_id not in latest or latest[snap.task_id].fact_count < snap.fact_count:
            latest[snap.task_id] = snap
    task_rows = [
        (
            s.task_id,
            s.state.user_id,
            s.state.content,
            s.state.status,
            s.state.created_at,
            s.state.completed_at,
            s.state.deleted_at,
            s.state.last_event_at,
            s.fact_count,
        )
        for s in latest.values()
    ]
    changed = {row["task_id"] for row in await conn.fetch(UPSERT_TASKS, *_columns(task_rows, 9))}
    if not changed:
        return
    await conn.execute("DELETE FROM task_transitions WHERE task_id = ANY($1::text[])", list(changed))
    transitions = [
        (s.task_id, seq, s.state.user_id or "", t.kind, t.at, t.content, t.event_id)
        for s in latest.values()
        if s.task_id in changed
        for seq, t in enumerate(s.transitions)
    ]
    if transitions:
        await conn.execute(INSERT_TRANSITIONS, *_columns(transitions, 7))
    events = [
        (o.event_id, s.task_id, o.event, o.ts, o.status, o.reason, o.late, s.received[str(o.event_id)])
        for s in latest.values()
        if s.task_id in changed
        for o in s.outcomes
    ]
    if events:
        await conn.execute(UPSERT_EVENTS, *_columns(events, 8))


def snapshot_sink(app: Host) -> PostgresSink[TaskSnapshot]:
    return PostgresSink(
        app,
        name="tasks.snapshots-sink",
        pipeline=PIPELINE,
        decode=TaskSnapshot.model_validate_json,
        write=write_snapshots,
    )
