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
# Longer than a sink transaction takes to commit (a retried one stamps anew).
VISIBILITY_MARGIN = timedelta(seconds=5)


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
        # The end of the last closed interval at the previous scan.
        self._closed_end: datetime | None = None

    async def on_start(self) -> None:
        self.app.settings.reports_path.mkdir(parents=True, exist_ok=True)
        self.add_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            started = loop.time()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("task reports: tick failed: %s", describe(exc))
            # Under load a scan takes a while: wait at least as long as it took, so
            # reporting never takes more than half of the worker's event loop.
            await asyncio.sleep(max(self.app.settings.report_tick, loop.time() - started))

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
        """Three queries and one batch of inserts per tick, however many users changed."""
        settings = self.app.settings
        interval, grace = settings.report_interval, timedelta(seconds=settings.report_grace)
        closed_end = interval_of(now, interval)[0]
        # `changed_at` is stamped inside the sink's transaction, which may commit
        # after a tick has already looked: look back a margin, so no change is
        # missed (unchanged reports are skipped by their digest).
        since = self._since - VISIBILITY_MARGIN if self._since else datetime.min.replace(tzinfo=now.tzinfo)
        if self._closed_end is not None and closed_end > self._closed_end:
            # An interval closed since the last scan: its report is due now for every user
            # active in it, also those who have changed nothing since (once per interval).
            since = min(since, self._closed_end - VISIBILITY_MARGIN)
        users = [
            r["user_id"]
            for r in await conn.fetch(
                "SELECT DISTINCT user_id FROM tasks WHERE user_id IS NOT NULL AND changed_at > $1", since
            )
        ]
        if not users:
            self._closed_end = closed_end
            return 0
        transitions = await users_transitions(conn, users)
        latest = {
            (r["user_id"], r["start_at"]): r
            for r in await conn.fetch(
                """
                SELECT DISTINCT ON (user_id, start_at) user_id, start_at, end_at, revision, digest
                FROM task_reports WHERE user_id = ANY($1::text[])
                ORDER BY user_id, start_at, revision DESC
                """,
                users,
            )
        }
        due: list[tuple[ReportContent, int]] = []
        for user_id in users:
            tasks = transitions.get(user_id, {})
            active = {
                interval_of(t.at, interval)[0]
                for history in tasks.values()
                for t in history
                if t.at < closed_end
            }
            amendable = {
                start for (user, start), r in latest.items() if user == user_id and r["end_at"] + grace > now
            }
            for start in sorted(active | amendable):
                previous = latest.get((user_id, start))
                if previous is not None and start not in amendable:
                    continue  # past its grace period: final
                content = build_report(user_id, start, start + timedelta(seconds=interval), tasks)
                if previous is not None and previous["digest"] == content.digest():
                    continue
                due.append((content, previous["revision"] + 1 if previous is not None else 1))
        await self._store(conn, due)
        self._closed_end = closed_end
        return len(due)

    async def _store(self, conn: asyncpg.Connection, due: list[tuple[ReportContent, int]]) -> None:
        if not due:
            return
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
        stored = {(r["user_id"], r["start_at"], r["revision"]): r["computed_at"] for r in rows}
        files = [
            (
                self.app.settings.reports_path / report_filename(c.user_id, c.start, c.end),
                report_document(c, rev, stored[(c.user_id, c.start, rev)]),
            )
            for c, rev in due
            if (c.user_id, c.start, rev) in stored
        ]
        try:
            await asyncio.to_thread(write_files, files)
        except OSError as exc:
            # PostgreSQL holds the reports; the files are rewritten with the next revision.
            log.error("task reports: cannot write report files: %s", describe(exc))
        log.info("task reports: stored %d report revisions", len(stored))


def write_files(files: list[tuple[Path, bytes]]) -> None:
    for path, data in files:
        write_atomically(path, data)


def write_atomically(path: Path, data: bytes) -> None:
    """Readers never see half a file: write a sibling, then rename over."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
