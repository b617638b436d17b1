"""`streamapp migrate [--status]`: apply or list the pipelines' migrations, as a deploy step."""

from __future__ import annotations

import logging
import sys

import asyncpg

from streamapp.db.migrate import (
    MigrationChecksumMismatch,
    MigrationStatus,
    apply_migrations,
    migration_status,
    pipeline_migrations,
)
from streamapp.db.pool import when_reachable
from streamapp.pipeline import discover_pipelines
from streamapp.settings import Settings

log = logging.getLogger(__name__)

# Exit statuses a deploy pipeline can branch on.
UP_TO_DATE = 0
PENDING = 1
CHECKSUM_MISMATCH = 2


async def connect(settings: Settings) -> asyncpg.Connection:
    """Connect, waiting up to STREAMAPP_DB_CONNECT_TIMEOUT for PostgreSQL, as a worker does.

    An init container usually starts alongside the database it migrates.
    """
    conn: asyncpg.Connection = await when_reachable(
        lambda: asyncpg.connect(settings.postgres_dsn, timeout=10), settings.db_connect_timeout
    )
    return conn


def _print_status(statuses: list[MigrationStatus]) -> None:
    width = max((len(f"{s.scope}/{s.version}") for s in statuses), default=0)
    for status in statuses:
        state = "CHANGED" if status.state == "changed" else status.state
        when = status.applied_at.isoformat(timespec="seconds") if status.applied_at else ""
        print(f"{status.scope}/{status.version}".ljust(width), state.ljust(8), when)


async def run_migrate(settings: Settings, status_only: bool) -> int:
    migrations = pipeline_migrations(discover_pipelines())
    conn = await connect(settings)
    try:
        statuses = await migration_status(conn, migrations)
        if status_only:
            _print_status(statuses)
            if any(s.state == "changed" for s in statuses):
                return CHECKSUM_MISMATCH
            return PENDING if any(s.state == "pending" for s in statuses) else UP_TO_DATE
        try:
            applied = await apply_migrations(conn, migrations)
        except MigrationChecksumMismatch as exc:
            print(f"streamapp migrate: {exc}; run `streamapp migrate --status`", file=sys.stderr)
            return CHECKSUM_MISMATCH
        for name in applied:
            print(f"applied {name}")
        if not applied:
            print("nothing to apply")
        return UP_TO_DATE
    finally:
        await conn.close()
