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
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from streamapp.app import create_app, key_partitioner
from streamapp.compat import DurableStore
from streamapp.pipeline import Rebuild, discover_pipelines
from streamapp.settings import Settings, load_settings

# The offset a rebuilt partition claims to have read: past the end of any changelog,
# so recovery treats the local store as the newer copy and re-seeds the changelog.
REBUILT_OFFSET = 2**62


def rebuildable() -> dict[str, Rebuild]:
    """The installed pipelines whose table PostgreSQL holds enough to rebuild, by name."""
    return {p.name: p.rebuild for p in discover_pipelines() if p.rebuild is not None}


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
    rebuild = rebuildable()[pipeline]
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
