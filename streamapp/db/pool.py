"""The `Database` service: owns the asyncpg pool, applies migrations when it starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
from mode import Service

from streamapp.db.migrate import Migration, apply_migrations
from streamapp.errors import DependencyUnavailable, is_retriable
from streamapp.retry import backoff_delays

log = logging.getLogger(__name__)
T = TypeVar("T")
# What runs a store's statement: a connection (inside a transaction), or the pool (a view's
# single read on whichever connection is free); both have fetch/fetchrow/fetchval/execute.
Executor = asyncpg.Connection | asyncpg.Pool


class Database(Service):
    """Opens the pool in `on_start` (waiting for PostgreSQL to come up) and closes it in `on_stop`."""

    def __init__(
        self,
        dsn: str,
        *,
        migrations: Sequence[Migration] = (),
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 60.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._dsn = dsn
        self._migrations = list(migrations)
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DependencyUnavailable("the database pool is not open")
        return self._pool

    async def on_start(self) -> None:
        pool = await when_reachable(
            lambda: asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=10,
                # asyncpg prepares every statement; after five runs PostgreSQL may
                # switch it to a generic plan, which for the sinks' `unnest($1::text[])`
                # batches guesses the array sizes wrong (3x slower than executemany in
                # the licenses bench). A custom plan per batch costs ~0.1 ms.
                server_settings={"plan_cache_mode": "force_custom_plan"},
            ),
            self._connect_timeout,
        )
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn, self._migrations)
        except BaseException:
            await pool.close()
            raise
        # Offered only now: services that wait for the pool may then rely on every table.
        self._pool = pool

    async def on_stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> bool:
        """Readiness: can we run a trivial query right now?"""
        try:
            async with asyncio.timeout(2.0):
                await self.pool.fetchval("SELECT 1")
            return True
        except Exception:
            return False


async def when_reachable(connect: Callable[[], Awaitable[T]], timeout: float) -> T:
    """`connect()`, retried with backoff while PostgreSQL is not reachable, for up to `timeout` s.

    A worker (or a migrate init container) usually starts alongside its database.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delays = backoff_delays(0.2, 5.0)
    while True:
        try:
            return await connect()
        except Exception as exc:
            if not is_retriable(exc) or loop.time() > deadline:
                raise
            delay = next(delays)
            log.warning("PostgreSQL not reachable yet (%r), retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
