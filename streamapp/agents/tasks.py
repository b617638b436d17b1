"""Task agents: events -> the task's fact set (table) -> snapshots -> PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from faust.types import TableT

from streamapp.batching import for_each_batch
from streamapp.envelope import Envelope
from streamapp.errors import describe
from streamapp.ingest import publish_durably
from streamapp.models.tasks import (
    MAX_EVENTS_PER_TASK,
    TaskFact,
    TaskSnapshot,
    facts_from_table,
    facts_to_table,
)
from streamapp.sink import PostgresSink, event_position
from streamapp.tables.state import put_all
from streamapp.typing import Event, Stream, Topic

if TYPE_CHECKING:
    from streamapp.app import StreamApp

log = logging.getLogger(__name__)
PIPELINE = "tasks"


class TaskProcessor:
    """Adds each event to its task's fact set and emits the task's new snapshot.

    A redelivered event is already in the set and changes nothing. As in every
    agent here, the snapshots are acknowledged before the table is written.
    """

    def __init__(self, app: StreamApp, snapshots: Topic, table: TableT[bytes, Any]) -> None:
        self.app = app
        self.snapshots = snapshots
        self.table = table

    async def run(self, stream: Stream) -> None:
        await for_each_batch(stream, 500, 0.05, self.handle, "tasks.events")

    async def handle(self, events: Sequence[Event]) -> None:
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
                log.warning(
                    "tasks: cannot process %s: %s",
                    event_position(event),
                    describe(exc),
                    extra={
                        "position": event_position(event),
                        "event_id": str(getattr(envelope, "event_id", "")),
                    },
                )
                await self.app.dead_letters.send_event(
                    event,
                    pipeline=PIPELINE,
                    reason="invalid_task_event",
                    detail=describe(exc),
                    event_id=str(envelope.event_id) if envelope else None,
                )
        snapshots = [
            (key, TaskSnapshot.of(key.decode(), facts).model_dump_json().encode())
            for key, (_, facts) in changed.items()
        ]
        await publish_durably(self.app.settings, self.snapshots, snapshots)
        await put_all(
            self.app.settings,
            self.table,
            [(event, key, facts_to_table(facts)) for key, (event, facts) in changed.items()],
        )


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


def snapshot_sink(app: StreamApp) -> PostgresSink[TaskSnapshot]:
    return PostgresSink(
        app,
        name="tasks.snapshots-sink",
        pipeline=PIPELINE,
        decode=TaskSnapshot.model_validate_json,
        write=write_snapshots,
    )
