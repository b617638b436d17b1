"""Applies SQL migrations at start-up, once each, tracked in `schema_migrations`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Literal, Protocol

import asyncpg

from streamapp.errors import StreamappError

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every worker so that
# concurrent start-ups apply migrations one at a time.
_ADVISORY_LOCK = 0x5354_5245_414D  # "STREAM"


class Migrating(Protocol):
    """A pipeline as migrations see it (`streamapp.pipeline.Pipeline`): a scope and its package."""

    @property
    def name(self) -> str: ...

    @property
    def migrations(self) -> str | None: ...


class MigrationChecksumMismatch(StreamappError):
    reason = "migration_checksum_mismatch"


@dataclass(frozen=True)
class Migration:
    scope: str
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(scope: str, package: str) -> list[Migration]:
    """Read `NNNN_name.sql` files from a package folder, in name order."""
    folder = resources.files(package)
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [Migration(scope, entry.name.removesuffix(".sql"), entry.read_text()) for entry in files]


def pipeline_migrations(pipelines: Sequence[Migrating]) -> list[Migration]:
    """The core's migrations (oversized dead-letter payloads), then every pipeline's, in the order
    the worker applies them."""
    migrations: list[Migration] = load_migrations("core", "streamapp.db.migrations.core")
    for pipeline in pipelines:
        if pipeline.migrations:
            migrations.extend(load_migrations(pipeline.name, pipeline.migrations))
    return migrations


MigrationState = Literal["applied", "pending", "changed", "unknown"]


@dataclass(frozen=True)
class MigrationStatus:
    scope: str
    version: str
    # "changed": applied, but the file differs now; "unknown": applied, but this
    # release has no such file (a newer release ran, or a file was removed).
    state: MigrationState
    applied_at: datetime | None = None


async def migration_status(
    conn: asyncpg.Connection, migrations: Sequence[Migration]
) -> list[MigrationStatus]:
    """What is applied, pending, changed or unknown; reads only (creates no table)."""
    done: dict[tuple[str, str], asyncpg.Record] = {}
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is not None:
        rows = await conn.fetch("SELECT scope, version, checksum, applied_at FROM schema_migrations")
        done = {(row["scope"], row["version"]): row for row in rows}
    result: list[MigrationStatus] = []
    for migration in migrations:
        row = done.pop((migration.scope, migration.version), None)
        if row is None:
            result.append(MigrationStatus(migration.scope, migration.version, "pending"))
        else:
            state: MigrationState = "applied" if row["checksum"] == migration.checksum else "changed"
            result.append(MigrationStatus(migration.scope, migration.version, state, row["applied_at"]))
    for (scope, version), row in sorted(done.items()):
        result.append(MigrationStatus(scope, version, "unknown", row["applied_at"]))
    return result


async def apply_migrations(conn: asyncpg.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply what is not applied yet; refuse to start if an applied file was edited."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK)
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                scope      text NOT NULL,
                version    text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (scope, version)
            )
            """
        )
        rows = await conn.fetch("SELECT scope, version, checksum FROM schema_migrations")
        done = {(row["scope"], row["version"]): row["checksum"] for row in rows}
        for migration in migrations:
            known = done.get((migration.scope, migration.version))
            if known is not None:
                if known != migration.checksum:
                    raise MigrationChecksumMismatch(
                        f"{migration.scope}/{migration.version} changed after it was applied"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (scope, version, checksum) VALUES ($1, $2, $3)",
                migration.scope,
                migration.version,
                migration.checksum,
            )
            applied_now.append(f"{migration.scope}/{migration.version}")
    if applied_now:
        log.info("applied migrations: %s", ", ".join(applied_now))
    return applied_now
