"""The `ReportService`: closes event-time intervals into per-user task reports, and amends them."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from mode import Service

from streamapp.errors import describe
from streamapp.models.task_reports import (
    ReportContent,
    build_report,
    interval_of,
    report_document,
    report_filename,
)
from streamapp.models.tasks import Transition

if TYPE_CHECKING:
    from streamapp.app import StreamApp

log = logging.getLogger(__name__)
# One worker computes reports at a time (any worker may; the lock decides).
_REPORT_LOCK = 0x5441_534B_5250  # "TASKRP"


async def user_transitions(conn: asyncpg.Connection, user_id: str) -> dict[str, list[Transition]]:
    rows = await conn.fetch(
        "SELECT task_id, kind, at, content, event_id FROM task_transitions"
        " WHERE user_id = $1 ORDER BY task_id, seq",
        user_id,
    )
    tasks: dict[str, list[Transition]] = defaultdict(list)
    for row in rows:
        tasks[row["task_id"]].append(
            Transition(kind=row["kind"], at=row["at"], content=row["content"], event_id=row["event_id"])
        )
    return tasks


class ReportService(Service):
    """Every tick, for users whose tasks changed since the last tick:

    - an interval that has ended and has the user's activity but no report gets
      revision 1;
    - a reported interval still inside its grace period (end + grace > now) is
      recomputed, and a different result is stored as the next revision.

    Reports are a function of the transitions in PostgreSQL, which are a function
    of the set of events: a replay after a crash yields the same reports.
    """

    def __init__(self, app: StreamApp, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self._since: datetime | None = None

    async def on_start(self) -> None:
        self.app.settings.reports_path.mkdir(parents=True, exist_ok=True)
        self.add_future(self._run())

    async def _run(self) -> None:
        while not self.should_stop:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("task reports: tick failed: %s", describe(exc))
            await asyncio.sleep(self.app.settings.report_tick)

    async def tick(self) -> int:
        """Returns how many report revisions were written."""
        async with self.app.db.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _REPORT_LOCK):
                return 0
            try:
                now: datetime = await conn.fetchval("SELECT clock_timestamp()")
                written = await self._scan(conn, now)
                self._since = now
                return written
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _REPORT_LOCK)

    async def _scan(self, conn: asyncpg.Connection, now: datetime) -> int:
        settings = self.app.settings
        interval, grace = settings.report_interval, timedelta(seconds=settings.report_grace)
        closed_end = interval_of(now, interval)[0]
        users = await conn.fetch(
            "SELECT DISTINCT user_id FROM tasks WHERE user_id IS NOT NULL AND changed_at > $1",
            self._since or datetime.min.replace(tzinfo=now.tzinfo),
        )
        written = 0
        for row in users:
            user_id: str = row["user_id"]
            tasks = await user_transitions(conn, user_id)
            active = {
                interval_of(t.at, interval)[0] for ts in tasks.values() for t in ts if t.at < closed_end
            }
            latest = {
                r["start_at"]: r
                for r in await conn.fetch(
                    """
                    SELECT DISTINCT ON (start_at) start_at, end_at, revision, digest FROM task_reports
                    WHERE user_id = $1 AND end_at + $2::interval > $3
                    ORDER BY start_at, revision DESC
                    """,
                    user_id,
                    grace,
                    now,
                )
            }
            missing = active - set(latest) - await self._reported(conn, user_id, active)
            for start in sorted(missing | set(latest)):
                end = start + timedelta(seconds=interval)
                content = build_report(user_id, start, end, tasks)
                previous = latest.get(start)
                if previous is not None and previous["digest"] == content.digest():
                    continue
                revision = (previous["revision"] + 1) if previous is not None else 1
                await self._store(conn, content, revision)
                written += 1
        return written

    async def _reported(self, conn: asyncpg.Connection, user_id: str, starts: set[datetime]) -> set[datetime]:
        """Intervals already reported (and past their grace: those are final)."""
        if not starts:
            return set()
        rows = await conn.fetch(
            "SELECT DISTINCT start_at FROM task_reports"
            " WHERE user_id = $1 AND start_at = ANY($2::timestamptz[])",
            user_id,
            list(starts),
        )
        return {r["start_at"] for r in rows}

    async def _store(self, conn: asyncpg.Connection, content: ReportContent, revision: int) -> None:
        generated_at: datetime = await conn.fetchval(
            """
            INSERT INTO task_reports (user_id, start_at, end_at, revision, digest, content)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT DO NOTHING RETURNING computed_at
            """,
            content.user_id,
            content.start,
            content.end,
            revision,
            content.digest(),
            content.model_dump_json(),
        )
        if generated_at is None:
            return
        path = self.app.settings.reports_path / report_filename(content.user_id, content.start, content.end)
        try:
            await asyncio.to_thread(write_atomically, path, report_document(content, revision, generated_at))
        except OSError as exc:
            # PostgreSQL holds the report; the file is rewritten with the next revision.
            log.error("task reports: cannot write %s: %s", path, describe(exc))
        log.info(
            "task report %s rev %d (%d created, %d completed, %d deleted, %d open)",
            path.name,
            revision,
            *(content.counts[k] for k in ("created", "completed", "deleted", "open")),
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Readers never see half a file: write a sibling, then rename over."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
