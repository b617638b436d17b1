"""SQL for the carts server: traced statements, short transactions retried on conflicts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from streamapp.db.pool import Database

T = TypeVar("T")
log = logging.getLogger(__name__)

# Serialization failure and deadlock: PostgreSQL rolled the transaction back, so
# running it again cannot apply anything twice. Connection errors are not retried
# here: a COMMIT whose answer was lost may have happened.
_CONFLICTS = frozenset({"40001", "40P01"})
ATTEMPTS = 4


class Sql:
    """One connection; each statement is a client span named by what it does."""

    def __init__(self, conn: asyncpg.Connection, tracer: trace.Tracer) -> None:
        self.conn = conn
        self.tracer = tracer
        # Even the no-op tracer attaches and detaches a context per span: skip it.
        self.traced = not isinstance(tracer, trace.NoOpTracer)

    @contextmanager
    def _span(self, what: str, query: str) -> Iterator[None]:
        if not self.traced:
            yield
            return
        with self.tracer.start_as_current_span(
            what,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.operation": what.split(" ", 1)[0],
                "db.statement": " ".join(query.split()),
            },
        ):
            yield

    async def fetch(self, what: str, query: str, *args: Any) -> list[asyncpg.Record]:
        with self._span(what, query):
            rows: list[asyncpg.Record] = await self.conn.fetch(query, *args)
            return rows

    async def fetchrow(self, what: str, query: str, *args: Any) -> asyncpg.Record | None:
        with self._span(what, query):
            row: asyncpg.Record | None = await self.conn.fetchrow(query, *args)
            return row

    async def execute(self, what: str, query: str, *args: Any) -> str:
        with self._span(what, query):
            status: str = await self.conn.execute(query, *args)
            return status

    async def executemany(self, what: str, query: str, args: list[tuple[Any, ...]]) -> None:
        with self._span(what, query):
            await self.conn.executemany(query, args)


async def statements(db: Database, tracer: trace.Tracer, work: Callable[[Sql], Awaitable[T]]) -> T:
    """Run `work` on a pooled connection without a transaction: for reads of one statement each."""
    async with db.pool.acquire() as conn:
        return await work(Sql(conn, tracer))


async def transaction(
    db: Database,
    tracer: trace.Tracer,
    work: Callable[[Sql], Awaitable[T]],
) -> T:
    """Run `work` in one transaction, again if PostgreSQL rolled it back for a conflict."""
    attempt = 0
    while True:
        attempt += 1
        try:
            async with db.pool.acquire() as conn, conn.transaction():
                return await work(Sql(conn, tracer))
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) not in _CONFLICTS or attempt >= ATTEMPTS:
                raise
            log.info("carts: transaction conflict (%s), attempt %d; retrying", exc.sqlstate, attempt)
            await asyncio.sleep(0.005 * 2**attempt)
