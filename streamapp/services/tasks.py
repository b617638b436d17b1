"""The `ReportService`: closes event-time intervals into per-user task reports, and amends them."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from mode import Service

from streamapp.config.tasks import TasksSettings
from streamapp.errors import describe
from streamapp.rules.tasks import (
    ReportContent,
    build_report,
    interval_of,
    report_document,
    report_filename,
)
from streamapp.stores import tasks as store

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)
# One worker computes reports at a time (any worker may; the lock decides).
_REPORT_LOCK = 0x5441_534B_5250  # "TASKRP"
# Longer than a sink transaction takes to commit (a retried one stamps anew).
VISIBILITY_MARGIN = timedelta(seconds=5)


class ReportService(Service):
    """Every tick, for users whose tasks changed since the last tick:

    - an interval that has ended and has the user's activity but no report gets
      revision 1;
    - a reported interval still inside its grace period (end + grace > now) is
      recomputed, and a different result is stored as the next revision.

    Reports are a function of the transitions in PostgreSQL, which are a function
    of the set of events: a replay after a crash yields the same reports.
    """

    def __init__(self, app: Host, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self._since: datetime | None = None
        # The end of the last closed interval at the previous scan.
        self._closed_end: datetime | None = None

    async def on_start(self) -> None:
        self.app.settings.of(TasksSettings).reports_path.mkdir(parents=True, exist_ok=True)
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
            await asyncio.sleep(max(self.app.settings.of(TasksSettings).report_tick, loop.time() - started))

    async def tick(self) -> int:
        """Returns how many report revisions were written."""
        async with self.app.db.pool.acquire() as conn:
            if not await store.try_lock(conn, _REPORT_LOCK):
                return 0
            try:
                now = await store.clock(conn)
                written = await self._scan(conn, now)
                self._since = now
                return written
            finally:
                await store.unlock(conn, _REPORT_LOCK)

    async def _scan(self, conn: asyncpg.Connection, now: datetime) -> int:
        """Three queries and one batch of inserts per tick, however many users changed."""
        settings = self.app.settings.of(TasksSettings)
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
        users = await store.users_changed_since(conn, since)
        if not users:
            self._closed_end = closed_end
            return 0
        transitions = await store.users_transitions(conn, users)
        latest = await store.latest_report_revisions(conn, users)
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
        stored = await store.insert_reports(conn, due)
        files = [
            (
                self.app.settings.of(TasksSettings).reports_path / report_filename(c.user_id, c.start, c.end),
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
