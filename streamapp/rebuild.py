"""`streamapp rebuild-state PIPELINE`: rebuild a table's local store from PostgreSQL, the system of record.

For when both the changelog and the local store are gone (a new disk after the
embedded broker restarted, a deleted changelog on a real cluster). The rebuilt
state is written into this data directory's RocksDB store, and each partition is
marked as ahead of any changelog: the next worker on this data directory keeps it
and writes it back to the changelog before its agents start
(`streamapp.compat.KeepLocalStateRecovery`). Run it with the workers stopped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from streamapp.app import create_app, key_partitioner
from streamapp.compat import DurableStore
from streamapp.models.licenses import CustomerRecord
from streamapp.models.tasks import TaskFact, facts_to_table
from streamapp.rules.licenses import RECENT_EVENTS, LicenseState
from streamapp.settings import Settings, load_settings
from streamapp.tables.licenses import TABLE_NAME as LICENSE_STATE
from streamapp.tables.licenses import dump_state
from streamapp.tables.tasks import TABLE_NAME as TASK_EVENTS

# The offset a rebuilt partition claims to have read: past the end of any changelog,
# so recovery treats the local store as the newer copy and re-seeds the changelog.
REBUILT_OFFSET = 2**62

Rows = list[tuple[bytes, Any]]


@dataclass(frozen=True)
class Rebuild:
    table: str
    read: Callable[[asyncpg.Connection], Awaitable[Rows]]


LICENSES_SQL = """
SELECT c.id, c.name, c.account_manager, c.sales_engineer_id, c.signed_tos,
       c.effective_at, c.source_event_id,
       coalesce(json_object_agg(l.sku, l.active) FILTER (WHERE l.sku IS NOT NULL), '{}')::text AS skus,
       max(l.effective_at) AS licenses_at,
       (SELECT array_agg(h.source_event_id ORDER BY h.effective_at, h.recorded_at)
          FROM (SELECT source_event_id, effective_at, recorded_at FROM license_history
                 WHERE customer_id = c.id ORDER BY effective_at DESC, recorded_at DESC LIMIT $1) h
       ) AS recent
FROM customers c LEFT JOIN licenses l ON l.customer_id = c.id
GROUP BY c.id
"""


async def license_states(conn: asyncpg.Connection) -> Rows:
    """Each customer's `LicenseState` as the licenses agent would hold it after what PostgreSQL has."""
    rows: Rows = []
    for row in await conn.fetch(LICENSES_SQL, RECENT_EVENTS):
        skus: dict[str, bool] = json.loads(row["skus"])
        # The event ids PostgreSQL remembers, oldest first, each once: redeliveries of
        # them stay duplicates after the rebuild.
        recent = list(dict.fromkeys([*(row["recent"] or []), row["source_event_id"]]))
        effective = max(filter(None, (row["effective_at"], row["licenses_at"])))
        state = LicenseState(
            customer=CustomerRecord(
                id=row["id"],
                name=row["name"],
                account_manager=row["account_manager"],
                sales_engineer_id=row["sales_engineer_id"],
                signed_tos=row["signed_tos"],
                skus=skus,
            ),
            licensed=frozenset(sku for sku, active in skus.items() if active),
            effective_at=effective,
            last_event_id=recent[-1],
            recent_event_ids=tuple(recent[-RECENT_EVENTS:]),
        )
        rows.append((row["id"].encode(), dump_state(state)))
    return rows


TASKS_SQL = """
SELECT e.task_id, e.event_id, e.event, e.ts, e.received_at, t.user_id, t.content,
       tr.user_id AS tr_user, tr.kind AS tr_kind, tr.content AS tr_content
FROM task_events e
LEFT JOIN tasks t ON t.task_id = e.task_id
LEFT JOIN LATERAL (SELECT user_id, kind, content FROM task_transitions x
                    WHERE x.task_id = e.task_id AND x.event_id = e.event_id
                    ORDER BY seq DESC LIMIT 1) tr ON true
ORDER BY e.task_id, e.ts, e.event_id
"""


async def task_facts(conn: asyncpg.Connection) -> Rows:
    """Each task's facts (every event it received), from `task_events` and the transitions.

    PostgreSQL keeps an event's user, content and completion only through the
    transition it caused; an event that caused none (rejected, pending) gets the
    task's values at that point, which the rules ignore for such events anyway.
    """
    facts: dict[str, list[TaskFact]] = {}
    completed: dict[str, bool] = {}
    for row in await conn.fetch(TASKS_SQL):
        task = row["task_id"]
        kind = row["tr_kind"]
        done = completed.get(task, False)
        if kind in ("created", "completed"):
            done = kind == "completed"
        elif kind == "reopened":
            done = False
        completed[task] = done
        facts.setdefault(task, []).append(
            TaskFact(
                event_id=row["event_id"],
                event=row["event"],
                ts=row["ts"],
                user_id=row["tr_user"] or row["user_id"] or "",
                content=row["tr_content"] if row["tr_content"] is not None else row["content"] or "",
                completed=done,
                received_at=row["received_at"],
            )
        )
    return [(task.encode(), facts_to_table(items)) for task, items in facts.items()]


REBUILDS = {
    "licenses": Rebuild(LICENSE_STATE, license_states),
    "tasks": Rebuild(TASK_EVENTS, task_facts),
}


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The configured PostgreSQL, or the embedded one of this data directory, started for the rebuild."""
    if settings.database_url is not None:
        yield settings.postgres_dsn
        return
    from streamapp.embedded import EmbeddedPostgres

    postgres = EmbeddedPostgres(settings.data_dir / "pgdata")
    await postgres.start()
    try:
        yield postgres.url
    finally:
        await postgres.stop()


async def rebuild_state(settings: Settings, pipeline: str) -> str:
    """Rebuild the pipeline's table in this data directory's local store; returns a summary line."""
    rebuild = REBUILDS[pipeline]
    if not settings.table_store.startswith("rocksdb:"):
        raise SystemExit("rebuild-state writes the durable store: set STREAMAPP_TABLE_STORE=rocksdb://")
    async with database(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await rebuild.read(conn)
        finally:
            await conn.close()
    # The app only for its table declarations (store, codecs, changelog name): nothing connects.
    offline = load_settings(
        broker_url=settings.broker_url or "kafka://127.0.0.1:9",
        database_url=settings.database_url or "postgresql://127.0.0.1:9/none",
    )
    app = create_app(offline)
    table: Any = app.tables[rebuild.table]
    store = table.data
    if not isinstance(store, DurableStore):
        raise SystemExit(f"table {rebuild.table} is not in the durable store")
    topic = table.changelog_topic
    partitions = list(range(settings.topic_partitions))
    try:
        dropped = 0
        for partition in partitions:
            try:
                dropped += store.clear_partition(partition)
            except Exception as exc:  # RocksDB holds a lock per database while a worker runs
                raise SystemExit(f"cannot open the local store ({exc}); stop the worker first") from exc
        for key, value in rows:
            raw_key, _ = topic.prepare_key(key, table.key_serializer)
            raw_value, _ = topic.prepare_value(value, table.value_serializer)
            store.put_raw(key_partitioner(raw_key, partitions, partitions), raw_key, raw_value)
        from faust.types import TP

        for partition in partitions:
            store.set_persisted_offset(TP(topic.get_topic_name(), partition), REBUILT_OFFSET)
    finally:
        store.close()
    return (
        f"{rebuild.table}: {len(rows)} keys rebuilt from PostgreSQL into {store.path} "
        f"({dropped} local keys replaced); the next worker on this data directory writes them "
        "back to the changelog"
    )
