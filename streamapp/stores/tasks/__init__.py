"""The tasks pipeline's SQL: the snapshot sink's writes, the report service's and the views' reads,
and the table rebuild's (`streamapp rebuild-state tasks`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from streamapp.db.arrays import columns
from streamapp.db.pool import Executor
from streamapp.models.tasks import TaskFact, TaskSnapshot, Transition, facts_to_table
from streamapp.pipeline import Rows

if TYPE_CHECKING:
    from streamapp.rules.tasks import ReportContent

TASKS_SQL = """
SELECT e.task_id, e.event_id, e.event, e.ts, e.received_at, t.user_id, t.content,
       tr.user_id AS tr_user, tr.kind AS tr_kind, tr.content AS tr_content
FROM task_events e
LEFT JOIN tasks t ON t.task_id = e.task_id
LEFT JOIN LATERAL (SELECT user_id, kind, content FROM task_transitions x
                    WHERE x.task_id = e.task_id AND x.event_id = e.event_id
                    ORDER BY seq DESC LIMIT 1) tr ON true
ORDER BY e.task_id, e.ts, e.event_id
"""


async def task_facts(conn: asyncpg.Connection) -> Rows:
    """Each task's facts (every event it received), from `task_events` and the transitions.

    PostgreSQL keeps an event's user, content and completion only through the
    transition it caused; an event that caused none (rejected, pending) gets the
    task's values at that point, which the rules ignore for such events anyway.
    """
    facts: dict[str, list[TaskFact]] = {}
    completed: dict[str, bool] = {}
    for row in await conn.fetch(TASKS_SQL):
        task = row["task_id"]
        kind = row["tr_kind"]
        done = completed.get(task, False)
        if kind in ("created", "completed"):
            done = kind == "completed"
        elif kind == "reopened":
            done = False
        completed[task] = done
        facts.setdefault(task, []).append(
            TaskFact(
                event_id=row["event_id"],
                event=row["event"],
                ts=row["ts"],
                user_id=row["tr_user"] or row["user_id"] or "",
                content=row["tr_content"] if row["tr_content"] is not None else row["content"] or "",
                completed=done,
                received_at=row["received_at"],
            )
        )
    return [(task.encode(), facts_to_table(items)) for task, items in facts.items()]


# --- the snapshot sink

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
    changed = {row["task_id"] for row in await conn.fetch(UPSERT_TASKS, *columns(task_rows, 9))}
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
        await conn.execute(INSERT_TRANSITIONS, *columns(transitions, 7))
    events = [
        (o.event_id, s.task_id, o.event, o.ts, o.status, o.reason, o.late, s.received[str(o.event_id)])
        for s in latest.values()
        if s.task_id in changed
        for o in s.outcomes
    ]
    if events:
        await conn.execute(UPSERT_EVENTS, *columns(events, 8))


# --- reports


async def users_transitions(
    conn: asyncpg.Connection, users: list[str]
) -> dict[str, dict[str, list[Transition]]]:
    """user -> task -> its transitions in order."""
    rows = await conn.fetch(
        "SELECT user_id, task_id, kind, at, content, event_id FROM task_transitions"
        " WHERE user_id = ANY($1::text[]) ORDER BY user_id, task_id, seq",
        users,
    )
    result: dict[str, dict[str, list[Transition]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        result[row["user_id"]][row["task_id"]].append(
            Transition(kind=row["kind"], at=row["at"], content=row["content"], event_id=row["event_id"])
        )
    return result


async def user_transitions(conn: asyncpg.Connection, user_id: str) -> dict[str, list[Transition]]:
    return (await users_transitions(conn, [user_id])).get(user_id, {})


async def try_lock(conn: asyncpg.Connection, key: int) -> bool:
    """A session-level advisory lock: held by this connection until `unlock`."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))


async def unlock(conn: asyncpg.Connection, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def clock(conn: asyncpg.Connection) -> datetime:
    """The database's clock: `changed_at` is stamped by it, so comparisons use it too."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now


async def users_changed_since(conn: asyncpg.Connection, since: datetime) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM tasks WHERE user_id IS NOT NULL AND changed_at > $1", since
    )
    return [r["user_id"] for r in rows]


async def latest_report_revisions(
    conn: asyncpg.Connection, users: list[str]
) -> dict[tuple[str, datetime], asyncpg.Record]:
    """(user, interval start) -> the newest revision's end_at, revision and digest."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (user_id, start_at) user_id, start_at, end_at, revision, digest
        FROM task_reports WHERE user_id = ANY($1::text[])
        ORDER BY user_id, start_at, revision DESC
        """,
        users,
    )
    return {(r["user_id"], r["start_at"]): r for r in rows}


async def insert_reports(
    conn: asyncpg.Connection, due: Sequence[tuple[ReportContent, int]]
) -> dict[tuple[str, datetime, int], datetime]:
    """(report, revision) each; (user, start, revision) -> computed_at of those stored now.

    A revision another worker stored first is skipped (ON CONFLICT DO NOTHING).
    """
    rows = await conn.fetch(
        """
        INSERT INTO task_reports (user_id, start_at, end_at, revision, digest, content)
        SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::text[],
                             $6::jsonb[])
        ON CONFLICT DO NOTHING RETURNING user_id, start_at, revision, computed_at
        """,
        [c.user_id for c, _ in due],
        [c.start for c, _ in due],
        [c.end for c, _ in due],
        [rev for _, rev in due],
        [c.digest() for c, _ in due],
        [c.model_dump_json() for c, _ in due],
    )
    return {(r["user_id"], r["start_at"], r["revision"]): r["computed_at"] for r in rows}


# --- the views' reads


async def task(db: Executor, task_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow("SELECT * FROM tasks WHERE task_id = $1", task_id)
    return row


async def task_events(db: Executor, task_id: str, status: str | None) -> list[asyncpg.Record]:
    """The task's events in event-time order, optionally only those with `status`."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM task_events WHERE task_id = $1 AND ($2::text IS NULL OR status = $2)"
        " ORDER BY ts, event_id",
        task_id,
        status,
    )
    return rows


async def user_tasks(
    db: Executor, user_id: str, status: str | None, created: Any, after_id: Any, limit: int
) -> list[asyncpg.Record]:
    """One keyset page of the user's tasks: after (creation time, id); never created sorts first."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM tasks WHERE user_id = $1 AND status <> 'unknown'"
        " AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL"
        "      OR (coalesce(created_at, '-infinity'), task_id) > ($3::text::timestamptz, $4))"
        " ORDER BY coalesce(created_at, '-infinity'), task_id LIMIT $5",
        user_id,
        status,
        created,
        after_id,
        limit,
    )
    return rows


async def user_reports(db: Executor, user_id: str, start: datetime, end: datetime) -> list[asyncpg.Record]:
    """The newest revision of each stored report within [start, end)."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT DISTINCT ON (start_at) start_at, end_at, revision, content, computed_at
        FROM task_reports WHERE user_id = $1 AND start_at >= $2 AND end_at <= $3
        ORDER BY start_at, revision DESC
        """,
        user_id,
        start,
        end,
    )
    return rows
