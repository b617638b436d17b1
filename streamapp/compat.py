"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations

# --- Durable table state (issue 11) -------------------------------------------------
#
# Tables live in Faust's RocksDB store (rocksdict) under the data directory, so they
# survive a restart of the worker and of the broker. Two upstream behaviours get in
# the way, both in faust-streaming 0.15.3:
#
# - `faust.stores.rocksdb.Store._get/_contains/_set` pick the partition's database
#   from Faust's *current event*. Our agents work in batches (streamapp/batching.py):
#   the current event is another event of the batch, or none at all, so a read
#   could look in the wrong partition's database and find nothing. `DurableStore`
#   reads by key across the partitions this worker holds (a bloom filter per
#   database makes a miss cheap) and `put_all` writes with the partition it names.
# - `faust.tables.recovery.Recovery` raises `ConsistencyError` ("persisted offset
#   ... is higher than the last offset in that topic") when the local store has
#   read further than the changelog now reaches. The embedded broker forgets every
#   topic at its restart, so that is the normal case there (and on a real cluster
#   it happens when a changelog is deleted or expires). `KeepLocalStateRecovery`
#   keeps the local state and writes it back to the changelog, see there.
import logging as _logging
from collections import Counter as _Counter
from typing import Any as _Any

from faust.stores.rocksdb import Store as _RocksDBStore
from faust.tables.recovery import Recovery as _Recovery
from faust.types import TP as _TP

_log = _logging.getLogger(__name__)


class DurableStore(_RocksDBStore):
    """Faust's RocksDB store, with reads by key instead of by Faust's current event."""

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found.value

    def _contains(self, key: bytes) -> bool:
        return self._get_bucket_for_key(key) is not None

    def put_raw(self, partition: int, key: bytes, value: bytes) -> None:
        """Store the changelog bytes of one key in its partition's database."""
        self._db_for_partition(partition).put(key, value)
        self._key_index[key] = partition

    def clear_partition(self, partition: int) -> int:
        """Delete every key of one partition (`streamapp rebuild-state`); returns how many."""
        db = self._db_for_partition(partition)
        keys = list(self._visible_keys(db))
        for key in keys:
            db.delete(key)
        self._key_index.clear()
        return len(keys)

    def close(self) -> None:
        """Close the open databases (Faust never does; a command that exits must flush them)."""
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()

    def partition_items(self, partition: int) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of one partition, as changelog bytes (without Faust's offset key)."""
        return list(self._visible_items(self._db_for_partition(partition)))


def use_durable_store() -> None:
    """Make `rocksdb://` mean `DurableStore` (Faust looks store classes up by URL scheme)."""
    from faust.stores import STORES

    STORES.aliases["rocksdb"] = f"{__name__}:DurableStore"


def store_local(
    table: _Any, partition: int, key: _Any, value: _Any, raw_key: bytes, raw_value: bytes
) -> None:
    """`table[key] = value` in the local store only (the caller published the changelog)."""
    store = table.data
    if isinstance(store, DurableStore):
        store.put_raw(partition, raw_key, raw_value)
    else:
        store[key] = value


class KeepLocalStateRecovery(_Recovery):
    """Recovery that keeps a local store which is ahead of its changelog, instead of refusing to start.

    Why not delete the local store (Faust's advice)? On the embedded broker the
    changelog is empty after every broker restart: deleting would throw away the
    only copy of the state outside PostgreSQL. Why not only reset the stored
    offset? Then the changelog would stay empty, and a worker that takes the
    partition over later (a rebalance, a standby, a lost disk) would recover an
    empty table. So the partition's local state is written back to the changelog
    (re-seeded) before any agent runs, and the stored offset is moved past what was
    written. Active partitions only: a standby's store is just moved to the
    changelog's end; the active worker re-seeds what it owns.
    """

    async def _build_offsets(
        self, consumer: _Any, tps: set[_TP], destination: _Counter[_TP], title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active":
            # Faust has built the active highwaters just before the offsets.
            await self._keep_local_state(consumer, tps, destination, self.active_highwaters, reseed=True)

    async def _build_highwaters(
        self, consumer: _Any, tps: set[_TP], destination: _Counter[_TP], title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        await self._correct_highwaters(tps, destination)
        if title == "standby":
            # Faust has built the standby offsets before their highwaters.
            await self._keep_local_state(consumer, tps, self.standby_offsets, destination, reseed=False)

    async def _correct_highwaters(self, tps: set[_TP], destination: _Counter[_TP]) -> None:
        """The embedded broker reports too small an end offset (streamapp/endoffsets.py)."""
        from streamapp.endoffsets import EndOffsets

        app: _Any = self.app
        reported = {tp: destination[tp] + 1 for tp in tps if destination.get(tp) is not None}
        async with EndOffsets(app.settings.kafka_url) as ends:
            actual = await ends.correct(reported)
        for tp, end in actual.items():
            if end - 1 > destination[tp]:
                _log.info(
                    "%s[%d]: the broker reported the end at %d, the records go on to %d",
                    tp.topic,
                    tp.partition,
                    destination[tp] + 1,
                    end,
                )
                destination[tp] = end - 1

    async def _keep_local_state(
        self,
        consumer: _Any,
        tps: set[_TP],
        offsets: _Counter[_TP],
        highwaters: _Counter[_TP],
        *,
        reseed: bool,
    ) -> None:
        from streamapp.ingest import publish_durably

        app: _Any = self.app  # a StreamApp: it carries the settings
        for tp in sorted(tps):
            offset, last = offsets.get(tp), highwaters.get(tp)
            if offset is None or last is None or offset <= last:
                continue
            table: _Any = self.tp_to_table[tp]
            store = table.data
            items = store.partition_items(tp.partition) if reseed and isinstance(store, DurableStore) else []
            _log.warning(
                "%s[%d]: the local store has read to offset %d but the changelog ends at %d "
                "(emptied or truncated, e.g. by a restart of the embedded broker): keeping the "
                "local state%s",
                tp.topic,
                tp.partition,
                offset,
                last,
                f" and writing its {len(items)} keys back to the changelog" if reseed else "",
            )
            if items:
                await publish_durably(
                    app.settings, table.changelog_topic, items, partitions=[tp.partition] * len(items)
                )
                last = (await consumer.highwaters(tp))[tp] - 1
            store.set_persisted_offset(tp, last)
            offsets[tp] = last
            highwaters[tp] = last


def use_keep_local_state_recovery(app: _Any) -> None:
    """Install `KeepLocalStateRecovery` as the app's table recovery (before the worker starts)."""
    tables = app.tables
    tables._recovery = KeepLocalStateRecovery(app, tables, beacon=tables.beacon, loop=tables.loop)


# --- Drain on stop (issue 11) --------------------------------------------------------


def committed_offsets(consumer: _Any) -> dict[_TP, int]:
    """Faust's last committed offset per partition (what a restart resumes from).

    Faust keeps them in `Consumer._committed_offset` and has no public reader;
    `streamapp dev` measures its backlog against them while it drains.
    """
    return dict(consumer._committed_offset)


def stop_worker_as_on_signal(worker: _Any, sig: _Any) -> None:
    """Stop a `mode.Worker` exactly as its own SIGINT/SIGTERM handler would.

    `Worker._schedule_shutdown` stops the services and then cancels the start
    future `execute_from_commandline` waits on; `worker.stop()` alone leaves that
    wait running. `streamapp dev` replaces the handler with its orderly stop
    (streamapp/drain.py) and ends with this.
    """
    worker._schedule_shutdown(sig)


async def producer_knows_topic(app: _Any, topic: str) -> None:
    """Wait until the producer has the topic's metadata (partitions).

    Faust's `Producer.key_partition` (used by `app.table_route`) reads aiokafka's
    metadata without waiting for it: until the worker has sent something to a
    changelog, as after every restart of a worker whose state came from its local
    store, routing a table key raised `TypeError: 'NoneType' object is not iterable`.
    """
    await app.producer._ensure_producer().partitions_for(topic)


async def record_changelog_positions(app: _Any) -> int:
    """At a clean stop, record in each local store how far its changelog partition goes.

    `put_all` writes the local store without the changelog offsets (the producer's
    acknowledgements are not passed back), so the stored offset is the one of the
    last recovery. Once the worker has drained, every record of the changelog
    partitions it owns is in its local store: recording their ends makes the next
    start read nothing on a real broker, and after a restart of the embedded broker
    makes `KeepLocalStateRecovery` see the store ahead of the emptied changelog and
    write the state back. Global tables are written by every worker: left alone.
    Returns how many partitions were recorded.
    """
    from streamapp.endoffsets import EndOffsets

    owned: dict[_TP, _Any] = {}
    actives = app.assignor.assigned_actives()
    for table in app.tables.values():
        if isinstance(table.data, DurableStore) and not table.is_global:
            name = table.changelog_topic.get_topic_name()
            owned.update({tp: table for tp in actives if tp.topic == name})
    if not owned:
        return 0
    reported = await app.consumer.highwaters(*owned)
    async with EndOffsets(app.settings.kafka_url) as ends:
        actual = await ends.correct(reported)
    recorded = 0
    for tp, end in actual.items():
        if end > 0:
            owned[tp].data.set_persisted_offset(tp, end - 1)
            recorded += 1
    return recorded
