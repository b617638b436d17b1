"""`streamapp migrate [--status]` run as a deploy step would run it, against the embedded PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from yarl import URL

from streamapp.cli import build_parser
from tests.integration.stack import Services


@pytest.fixture
async def fresh_database(services: Services) -> AsyncIterator[str]:
    """An empty database on the embedded server: what a first deploy meets."""
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(services.database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        url = URL(services.database_url)
        # The embedded server is reached over its socket (`?host=`): keep the query.
        yield str(url.with_path(f"/{name}").with_query(url.query))
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMAPP_DATABASE_URL": database_url, "STREAMAPP_LOG_LEVEL": "WARNING"}
    # A deploy step has no embedded broker and needs none.
    env.pop("STREAMAPP_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "streamapp", "migrate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_status_apply_status(fresh_database: str) -> None:
    before = run_cli(fresh_database, "--status")
    assert before.returncode == 1, before.stderr
    lines = before.stdout.splitlines()
    assert lines, before.stderr
    assert any(line.startswith("licenses/0001_licenses") and "pending" in line for line in lines)
    assert not any("applied" in line.split() for line in lines)
    # --status changed nothing.
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()

    applied = run_cli(fresh_database)
    assert applied.returncode == 0, applied.stderr
    assert "licenses/0001_licenses" in applied.stdout

    after = run_cli(fresh_database, "--status")
    assert after.returncode == 0, after.stderr
    assert "pending" not in after.stdout
    assert any(
        line.startswith("licenses/0001_licenses") and "applied" in line for line in after.stdout.splitlines()
    )

    again = run_cli(fresh_database)
    assert again.returncode == 0
    assert "nothing to apply" in again.stdout

    conn = await asyncpg.connect(fresh_database)
    try:
        # The tables exist: the migrations really ran.
        assert await conn.fetchval("SELECT to_regclass('licenses')") is not None
        await conn.execute(
            "UPDATE schema_migrations SET checksum = 'edited'"
            " WHERE scope = 'licenses' AND version = '0001_licenses'"
        )
        await conn.execute(
            "INSERT INTO schema_migrations (scope, version, checksum)"
            " VALUES ('licenses', '9999_from_a_newer_release', 'x')"
        )
    finally:
        await conn.close()
    mismatch = run_cli(fresh_database, "--status")
    assert mismatch.returncode == 2
    assert any(
        line.startswith("licenses/0001_licenses") and "CHANGED" in line
        for line in mismatch.stdout.splitlines()
    )
    assert any(
        "9999_from_a_newer_release" in line and "unknown" in line for line in mismatch.stdout.splitlines()
    )
    refused = run_cli(fresh_database)
    assert refused.returncode == 2
    assert "changed after it was applied" in refused.stderr


def test_migrate_is_a_cli_command() -> None:
    args = build_parser().parse_args(["migrate", "--status"])
    assert args.status
