"""Migrations against the real PostgreSQL: applied once, tracked, and edits refused."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from streamapp.db.migrate import Migration, MigrationChecksumMismatch, apply_migrations
from streamapp.db.pool import Database
from streamapp.errors import DependencyUnavailable
from tests.integration.stack import Services


async def test_applied_once_and_tracked(services: Services) -> None:
    schema = f"m_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(services.database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}")
        migrations = [
            Migration("demo", "0001_a", "CREATE TABLE a (id int)"),
            Migration("demo", "0002_b", "CREATE TABLE b (id int)"),
        ]
        assert await apply_migrations(conn, migrations) == ["demo/0001_a", "demo/0002_b"]
        assert await apply_migrations(conn, migrations) == []
        rows = await conn.fetch("SELECT version FROM schema_migrations WHERE scope='demo' ORDER BY version")
        assert [r["version"] for r in rows] == ["0001_a", "0002_b"]
        edited = [Migration("demo", "0001_a", "CREATE TABLE a (id bigint)")]
        with pytest.raises(MigrationChecksumMismatch):
            await apply_migrations(conn, edited)
        # A failing migration rolls back as a whole: nothing half-applied, nothing recorded.
        with pytest.raises(asyncpg.PostgresError):
            await apply_migrations(
                conn, [*migrations, Migration("demo", "0003_bad", "CREATE TABLE a (x int)")]
            )
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE scope='demo'") == 2
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_the_worker_applied_the_pipeline_migrations(db: asyncpg.Pool, worker: object) -> None:
    versions = await db.fetch(
        "SELECT scope, version FROM schema_migrations WHERE scope IN ('core', 'licenses') ORDER BY 1, 2"
    )
    assert [(r["scope"], r["version"]) for r in versions] == [
        ("core", "0001_dead_letter_payloads"),
        ("licenses", "0001_licenses"),
        ("licenses", "0002_idempotency_keys"),
    ]


async def test_the_pool_is_offered_only_once_migrations_are_applied(services: Services) -> None:
    """found: the pool was public while migrations ran, so a service that waited for it
    (assistance routing in an ingest process) queried tables not created yet and gave up
    with an ERROR at every fresh `streamapp dev` start."""
    slow = Migration(f"slow-{uuid.uuid4().hex[:8]}", "0001_wait", "SELECT pg_sleep(2)")
    db = Database(services.database_url, migrations=[slow])
    starting = asyncio.ensure_future(db.start())
    offered_early = False
    try:
        while not starting.done():
            try:
                _ = db.pool
                offered_early = True
            except DependencyUnavailable:
                pass
            await asyncio.sleep(0.05)
        await starting
        assert not offered_early
        assert await db.pool.fetchval("SELECT 1") == 1
    finally:
        await db.stop()
