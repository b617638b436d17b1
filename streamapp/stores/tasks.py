"""The tasks pipeline's reads of PostgreSQL for a table rebuild (`streamapp rebuild-state tasks`)."""

from __future__ import annotations

import asyncpg

from streamapp.models.tasks import TaskFact, facts_to_table
from streamapp.pipeline import Rows

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
