"""Applies SQL migrations at start-up, once each, tracked in `schema_migrations`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

from streamapp.errors import StreamappError

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every worker so that
# concurrent start-ups apply migrations one at a time.
_ADVISORY_LOCK = 0x5354_5245_414D  # "STREAM"


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
