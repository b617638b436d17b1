"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations

import logging as _logging
from collections import Counter as _Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from typing import Any as _Any

from faust.stores.rocksdb import Store as _RocksDBStore
from faust.tables.recovery import Recovery as _Recovery
from faust.types import TP as _TP

# --- Faust's consumer: the gap healer (streamapp/gaps.py) and GET /lag --------------
#
# Names used, all set by `faust.transport.consumer.Consumer` (faust-streaming 0.15.3):
#   _committed_offset, _acked, _acked_index, _unacked_messages: its commit bookkeeping,
#   with no public reader. `/lag` and the healer need the committed offsets and the
#   acked-but-uncommitted ones.
#   _add_gap: called by the fetch loop when an offset follows a hole; it acks the hole
#   as "compacted". Replaced: none of our acked topics is compacted, so a hole there
#   is a skipped fetch to redeliver, not records that do not exist.
#   _new_offset: the commit arithmetic; it commits over a one-offset hole
#   (`min(acked) - committed > 1`). Wrapped.
#   _thread (AIOKafkaConsumerThread): `seek_wait` seeks in the consumer's own thread;
#   `Consumer.seek` calls aiokafka from the caller's thread and the fetcher then
#   stalled for good. `_thread._consumer._subscription.subscription.assignment`:
#   aiokafka's positions (its public `position()` is a coroutine of the other loop).
# The contract test (tests/unit/test_compat.py) checks every one of them against the
# installed Faust and aiokafka.


class ConsumerInternals:
    """Faust's consumer bookkeeping, read and adjusted through public methods of ours."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def committed(self) -> Mapping[Any, int | None]:
        """The committed offset (next to read) per partition."""
        committed: Mapping[Any, int | None] = self.consumer._committed_offset
        return committed

    def acked(self) -> Mapping[Any, Sequence[int]]:
        """The offsets acked and not committed yet, per partition."""
        acked: Mapping[Any, Sequence[int]] = self.consumer._acked
        return acked

    def in_flight(self) -> list[tuple[Any, int]]:
        """(partition, offset) of every message handed to a stream and not acked yet."""
        return [(m.tp, m.offset) for m in list(self.consumer._unacked_messages) if not m.acked]

    def acknowledge(self, tp: Any, start: int, end: int) -> None:
        """Mark offsets [start, end) acked, as `Consumer.ack` would each message's."""
        acked, index = self.consumer._acked[tp], self.consumer._acked_index[tp]
        for offset in range(start, end):
            if offset not in index:
                index.add(offset)
                acked.append(offset)

    async def seek(self, tp: Any, offset: int) -> None:
        """Seek in the consumer's own thread (see the module notes), else Faust's seek."""
        thread = getattr(self.consumer, "_thread", None)
        if thread is not None and hasattr(thread, "seek_wait"):
            await thread.seek_wait({tp: offset})
        else:
            await self.consumer.seek(tp, offset)

    def positions(self, tps: Iterable[Any]) -> dict[Any, int]:
        """aiokafka's consumed position per partition (read across threads: a snapshot is enough)."""
        try:
            assignment = self.consumer._thread._consumer._subscription.subscription.assignment
        except AttributeError:  # not started, or no aiokafka thread (tests)
            return {}
        positions = {}
        for tp in tps:
            state = assignment.state_value(tp)  # Faust's TP and aiokafka's are equal tuples
            if state is not None and state.has_valid_position:
                positions[tp] = state.position
        return positions

    def replace_gap_acking(self, hold: Callable[[Any, int, int], Awaitable[None]]) -> None:
        """Faust calls `hold(tp, offset_from, offset_to)` for a fetched-over hole instead of acking it."""
        self.consumer._add_gap = hold

    def refuse_commits_when(self, hole: Callable[[int | None, Sequence[int]], bool]) -> None:
        """No commit for a partition while `hole(committed, acked)`; otherwise Faust's arithmetic."""
        new_offset = self.consumer._new_offset
        committed, acked = self.consumer._committed_offset, self.consumer._acked

        def guarded(tp: Any) -> int | None:
            if hole(committed[tp], acked[tp]):
                return None
            result: int | None = new_offset(tp)
            return result

        self.consumer._new_offset = guarded


# --- aiokafka's client: the dead-letter CLI -------------------------------------------


async def refresh_metadata(consumer: Any) -> None:
    """Ask the broker for topic metadata now; aiokafka has no public call for it.

    A consumer that has not subscribed knows no topics: `partitions_for_topic`
    answers None for a topic that exists until the metadata is refreshed.
    """
    await consumer._client.force_metadata_update()


# --- mode / Faust app: read by tests ----------------------------------------------------


def service_children(service: Any) -> list[Any]:
    """The services `service` started as dependencies (mode keeps them in `_children`)."""
    return list(service._children)


def created_consumer(app: Any) -> Any | None:
    """The app's consumer if something created it (`app.consumer` would create one)."""
    return app._consumer


# --- Faust's table routing: GET /tables/{table}/{key} (issue 12) ------------------------


async def learn_topic_partitions(app: Any, topic: str) -> None:
    """Make the producer's metadata know `topic` before Faust routes a key of it.

    `app.table_route` finds a key's worker through `Producer.key_partition`, which
    calls aiokafka's private `AIOKafkaProducer._partition` on the producer's cached
    metadata. For a changelog topic this process has not produced to yet, that
    cache has no entry, `partitions_for_topic` returns None and the route raised
    TypeError (a 500 found by the fuzz campaign). `partitions_for` (public) fetches
    the topic's metadata; Faust offers no public way to the aiokafka producer.
    """
    await kafka_producer(app.producer).partitions_for(topic)


# --- Readiness: GET /ready and the webhook gate (streamapp/readiness.py) -------------


async def broker_partition_counts(app: Any) -> dict[str, int]:
    """The partition count of every topic on the broker, asked through the app's producer.

    A metadata request for *all* topics never makes the broker auto-create one
    (one naming a missing topic may). Faust offers no public way to the aiokafka
    producer (`Producer._ensure_producer`, which raises Faust's `NotReady` before
    the producer started); its client's `fetch_all_metadata` is public aiokafka.
    """
    client = app.producer._ensure_producer().client
    cluster = await client.fetch_all_metadata()
    return {name: len(cluster.partitions_for_topic(name) or ()) for name in cluster.topics()}


def tables_recovered(app: Any) -> bool:
    """The worker joined its group, received an assignment and recovered its tables.

    `Recovery.completed` is set once Faust resumed the streams after the first
    recovery (also for an empty assignment) and is never cleared: later
    rebalances do not make a running worker unready. `app.tables.recovery` is
    public; `completed` has no public reader but the attribute itself.
    """
    completed: Any = app.tables.recovery.completed
    return bool(completed.is_set())


# --- End offsets from the fetch, not only ListOffsets (issue 14) -------------------
#
# Faust's table recovery, `/lag`, the drain and `record_changelog_positions` all ask
# `AIOKafkaConsumerThread._highwaters`, which asks aiokafka's `end_offsets`
# (ListOffsets, LATEST). The embedded Tansu 0.6.0 answers too small an end after
# multi-record batches; `streamapp.endoffsets.fetched_end_offsets` raises each end
# to the high watermark a fetch reports. Wrapped here, the one place every caller
# goes through; STREAMAPP_BROKER_CHECK_END_OFFSETS=false trusts ListOffsets (Kafka).


def use_fetched_end_offsets() -> None:
    """Make Faust's consumer report end offsets checked by a fetch (idempotent)."""
    from faust.transport.drivers import aiokafka as driver

    thread_cls: Any = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_streamapp_fetched_ends", False):
        return
    listed_highwaters = thread_cls._highwaters

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        listed: Mapping[Any, int] = await listed_highwaters(self, partitions)
        if self.consumer.in_transaction:
            return listed
        conf = self.app.conf
        servers = driver.server_list(self.transport.url, self.transport.default_port)
        auth = driver.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        from streamapp.endoffsets import fetched_end_offsets

        try:
            checked = await fetched_end_offsets(servers, auth, listed)
        except Exception as exc:  # a failed check must not fail recovery: the listed ends still work
            self.log.warning("could not check end offsets with a fetch (%r); using ListOffsets", exc)
            return listed
        return {tp: end for tp, end in checked.items() if end is not None}

    thread_cls._highwaters = _highwaters
    thread_cls._streamapp_listed_highwaters = listed_highwaters  # for the contract test
    thread_cls._streamapp_fetched_ends = True


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
    table: _Any, partition: int, key: _Any, value: Callable[[], _Any], raw_key: bytes, raw_value: bytes
) -> None:
    """`table[key] = value()` in the local store only (the caller published the changelog).

    `value` is called only for a store that keeps decoded values (memory): the
    durable store keeps the changelog bytes, so nothing is decoded for it.
    """
    store = table.data
    if isinstance(store, DurableStore):
        store.put_raw(partition, raw_key, raw_value)
    else:
        store[key] = value()


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
        if title == "standby":
            # Faust has built the standby offsets before their highwaters.
            await self._keep_local_state(consumer, tps, self.standby_offsets, destination, reseed=False)

    async def _keep_local_state(
        self,
        consumer: _Any,
        tps: set[_TP],
        offsets: _Counter[_TP],
        highwaters: _Counter[_TP],
        *,
        reseed: bool,
    ) -> None:
        from streamapp.publishing import publish_durably

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


def stop_worker_as_on_signal(worker: _Any, sig: _Any) -> None:
    """Stop a `mode.Worker` exactly as its own SIGINT/SIGTERM handler would.

    `Worker._schedule_shutdown` stops the services and then cancels the start
    future `execute_from_commandline` waits on; `worker.stop()` alone leaves that
    wait running. `streamapp dev` replaces the handler with its orderly stop
    (streamapp/drain.py) and ends with this.
    """
    worker._schedule_shutdown(sig)


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
    owned: dict[_TP, _Any] = {}
    actives = app.assignor.assigned_actives()
    for table in app.tables.values():
        if isinstance(table.data, DurableStore) and not table.is_global:
            name = table.changelog_topic.get_topic_name()
            owned.update({tp: table for tp in actives if tp.topic == name})
    if not owned:
        return 0
    # Checked by a fetch (use_fetched_end_offsets) unless STREAMAPP_BROKER_CHECK_END_OFFSETS is off.
    actual = await app.consumer.highwaters(*owned)
    recorded = 0
    for tp, end in actual.items():
        if end is not None and end > 0:
            owned[tp].data.set_persisted_offset(tp, end - 1)
            recorded += 1
    return recorded


# --- Faust's drain loop: no tasks per message (issue 10, speed) ------------------------
#
# `faust.transport.consumer.Consumer._drain_messages` (faust-streaming 0.15.3) hands
# every fetched message to the conductor through
# `await self.wait_first(callback(message), self.suspend_flow.wait())`: mode's
# `Service.wait_first` wraps the callback, the suspend wait and the service's
# stopped and crashed waits in four tasks and runs an `asyncio.wait` over them, for
# every message, so that a delivery blocked on a full agent queue is given up when a
# rebalance stops the flow. Almost every delivery never blocks (the conductor puts
# the event in the agent's queue and returns); those tasks, their scheduling and
# cancellation cost ~20 µs of CPU per record (py-spy, bench.peers).
#
# `batched_drain_messages` is the upstream loop, line for line, except for that
# call: it runs the callback's first step itself, and only a callback that waits
# (a full queue, flow control) is finished inside the same `wait_first` race, so
# a blocked delivery is given up exactly as before. A callback that completes at
# once completes first in upstream's race too (its task is scheduled first and
# never yields), so nothing else changes. The contract test pins the upstream
# source this was copied from: on a Faust upgrade, compare and copy again.


async def _resume(coro: _Any, yielded: _Any) -> _Any:
    """Drive `coro`, which yielded `yielded` at its first step, to its end, as an asyncio Task would."""
    import asyncio

    while True:
        try:
            if yielded is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:  # a future: wait for it, then let the coroutine read its outcome
                # What a Task does with a future a coroutine yields: take over the
                # "blocking" mark (asyncio's future protocol), else awaiting it again fails.
                yielded._asyncio_future_blocking = False
                await yielded
        except BaseException as exc:  # cancelled, or the future failed: passed into `coro`
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


async def deliver(consumer: _Any, callback: Callable[[_Any], _Any], message: _Any) -> None:
    """`await consumer.wait_first(callback(message), consumer.suspend_flow.wait())`, cheaply."""
    import asyncio

    coro = callback(message)
    if not asyncio.iscoroutine(coro):
        await consumer.wait_first(coro, consumer.suspend_flow.wait())
        return
    try:
        yielded = coro.send(None)
    except StopIteration:
        return  # delivered without waiting: the usual case
    await consumer.wait_first(_resume(coro, yielded), consumer.suspend_flow.wait())


async def batched_drain_messages(self: _Any, fetcher: _Any) -> None:  # pragma: no cover - the fetch loop
    """Faust's `Consumer._drain_messages` (0.15.3) with `deliver` instead of a `wait_first` per message."""
    import asyncio

    from faust.transport.consumer import CONSUMER_FETCHING

    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await deliver(self, callback, message)
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def use_batched_drain() -> None:
    """Make Faust's consumers drain with `batched_drain_messages` (idempotent)."""
    from faust.transport.consumer import Consumer

    consumer_cls: Any = Consumer
    if getattr(consumer_cls, "_streamapp_batched_drain", False):
        return
    consumer_cls._streamapp_upstream_drain = consumer_cls._drain_messages  # for the contract test
    consumer_cls._drain_messages = batched_drain_messages
    consumer_cls._streamapp_batched_drain = True


# --- Faust's fetch loop: waking up when an agent's buffer drains (issue 10) -----------
#
# `Consumer._wait_next_records` (faust-streaming 0.15.3): when every partition is paused
# because the agents' buffers are full (`on_buffer_full`, at 80 % of
# `stream_buffer_maxsize`), it sleeps a whole second before it looks again, however
# soon the buffer drains (`on_buffer_drop`, at 40 %). A worker working off a backlog
# at ~14,000 records/s drains a 16,384 buffer from 80 % to 40 % in under half a second
# and can then run dry before the second is over. The copy below waits for
# `on_buffer_drop` instead, still at most the second (and, as before, no longer than
# until the service stops). Partitions resumed otherwise (after recovery, on
# assignment) still wait out the second, as upstream. Apart from the `clear()` first
# and that wait it is the upstream method (its `active_partitions` branch written as
# one expression); the contract test pins the upstream source.


async def waking_wait_next_records(self: _Any, timeout: float) -> tuple[_Any, _Any]:
    """Faust's `Consumer._wait_next_records` (0.15.3), woken by a buffer drop instead of sleeping 1 s."""
    drained = buffer_drained(self)
    # Cleared before the partitions are looked at: a drop after this wakes the wait below.
    drained.clear()
    if not self.flow_active:
        await self.wait(self.can_resume_flow)

    try:
        # Set signal that _wait_next_records is waiting on the fetcher service.
        self.not_waiting_next_records.set()
        # Implementation for the Fetcher service.
        is_client_only = self.app.client_only

        active_partitions: set[_TP] | None = None if is_client_only else self._get_active_partitions()

        records: dict[_TP, list[_Any]] = {}
        if is_client_only or active_partitions:
            records = await self._getmany(
                active_partitions=active_partitions,
                timeout=timeout,
            )
        else:
            # Upstream: `await self.sleep(1)`.
            await self.wait_first(drained, timeout=1.0)
        return records, active_partitions
    finally:
        self.not_waiting_next_records.set()


def buffer_drained(consumer: _Any) -> _Any:
    """The consumer's event set when a paused partition's buffer drains (made on first use)."""
    import asyncio

    event = consumer.__dict__.get("_streamapp_buffer_drained")
    if event is None:
        event = consumer.__dict__["_streamapp_buffer_drained"] = asyncio.Event()
    return event


def waking_on_buffer_drop(self: _Any, tp: _TP) -> None:
    """Faust's `Consumer.on_buffer_drop`, then wake the fetch loop's wait for it."""
    self._streamapp_upstream_on_buffer_drop(tp)
    buffer_drained(self).set()


def use_waking_fetch() -> None:
    """Make Faust's consumers wake their fetch loop when a full buffer drains (idempotent)."""
    from faust.transport.consumer import Consumer

    consumer_cls: Any = Consumer
    if getattr(consumer_cls, "_streamapp_waking_fetch", False):
        return
    # Kept for the contract test and for the wrapper (which calls Faust's own first).
    consumer_cls._streamapp_upstream_wait_next_records = consumer_cls._wait_next_records
    consumer_cls._streamapp_upstream_on_buffer_drop = consumer_cls.on_buffer_drop
    consumer_cls._wait_next_records = waking_wait_next_records
    consumer_cls.on_buffer_drop = waking_on_buffer_drop
    consumer_cls._streamapp_waking_fetch = True


# --- Faust's acks: a batch's acks in one critical section (issue 10, speed) ------------
#
# `Message.ack` -> `ConsumerMessage.on_final_ack` -> `Consumer.ack` (faust-streaming
# 0.15.3) takes the re-entrant `ack_lock` three times per message and looks the topic's
# acking up each time: ~1.3 us an event. `ack_messages` does the same bookkeeping for a
# batch under one acquisition: the refcount, `acked`, and for the final ack of a
# message of an acking topic at or past the committed offset, `_unacked_messages`,
# `_acked_index`, `_acked` and `_n_acked`; then it wakes `_waiting_for_ack` once. The
# contract test acks the same messages both ways on the installed Faust and compares
# the consumer's bookkeeping; a message or consumer class with its own ack goes
# through it, one by one.


def ack_messages(consumer: _Any, messages: Iterable[_Any]) -> None:
    """`message.ack(consumer)` for each of `messages`, in order, under one `ack_lock`."""
    from faust.transport.consumer import Consumer
    from faust.types.tuples import ConsumerMessage, Message, ack_lock
    from mode.utils.futures import notify

    if type(consumer).ack is not Consumer.ack:
        for message in messages:
            message.ack(consumer)
        return
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    committed_offset = consumer._committed_offset
    acked_index = consumer._acked_index
    acked = consumer._acked
    unacked = consumer._unacked_messages
    newly = 0
    with ack_lock:
        try:
            for message in messages:
                kind = type(message)
                if kind.ack is not Message.ack or kind.on_final_ack is not ConsumerMessage.on_final_ack:
                    message.ack(consumer)
                    continue
                # Message.ack
                if message.acked:
                    continue
                refcount = message.refcount = max(message.refcount - 1, 0)
                if refcount:
                    continue
                # Consumer.ack
                message.acked = True
                if not acks_enabled_for(message.topic):
                    continue
                tp, offset = message.tp, message.offset
                committed = committed_offset[tp]
                if committed is None or offset >= committed:
                    index = acked_index[tp]
                    if offset not in index:
                        unacked.discard(message)
                        index.add(offset)
                        acked[tp].append(offset)
                        newly += 1
        finally:
            consumer._n_acked += newly
            notify(consumer._waiting_for_ack)


# --- Faust's producer: the aiokafka producer under it (issue 10, speed) ----------------


def kafka_producer(producer: Any) -> Any:
    """The `AIOKafkaProducer` of Faust's started producer (`Producer._ensure_producer`).

    Faust's `Producer` has no public way to it; the runtime sends its outputs as
    record batches (`create_batch` / `send_batch`, aiokafka's public API), which
    Faust's producer does not offer. Raises Faust's `NotReady` before the producer started.
    """
    return producer._ensure_producer()


# --- Faust's events on the batch runtime's channels (issue 10, speed) ------------------
#
# For every message the conductor calls the channel's `decode` (a closure
# `faust.serializers.schemas.Schema.compile` builds on each Topic): the key and the
# value through the serializer registry's codec lookup, then `App.create_event`
# builds a `faust.Event` (headers copied into a dict). For a topic whose key and
# value are raw bytes both lookups return the message's own bytes; the batch
# runtime reads `message`, `key`, `value` and calls `ack()` and nothing else of an
# event (no `Event.send`/`forward`, no current-event context). `RawEvent` is that
# much; `decode_raw_events` gives it to a raw topic's channel only. The contract
# test checks that Faust's decode and this one agree on the installed Faust.


class RawEvent:
    """What the batch runtime uses of a `faust.Event`, for a message of raw bytes."""

    __slots__ = ("app", "key", "message", "value")

    def __init__(self, app: Any, message: Any) -> None:
        self.app = app
        self.message = message
        self.key = message.key
        self.value = message.value

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.message.headers or ())

    def ack(self) -> bool:
        """As `faust.Event.ack`: the consumer marks the offset committable at the last reference."""
        acked: bool = self.message.ack(self.app.consumer)
        return acked


def is_raw_topic(channel: Any) -> bool:
    """True if Faust's decode hands a channel's message key and value over as they are (bytes)."""
    import faust

    if not isinstance(channel, faust.Topic):
        return False
    conf = channel.app.conf
    # The codec Faust's serializer registry picks: the topic's own, else the app's default
    # (`Registry.loads_key` / `Registry._serializer`); `bytes` types keep the payload as is.
    key_codec = channel.key_serializer or conf.key_serializer
    value_codec = channel.value_serializer or conf.value_serializer
    return channel.key_type is bytes and channel.value_type is bytes and key_codec == value_codec == "raw"


def decode_raw_events(channel: Any) -> bool:
    """Make a raw topic's channel decode messages into `RawEvent`s; False (left alone) for any other."""
    if not is_raw_topic(channel):
        return False
    app = channel.app

    async def decode(message: Any, *, propagate: bool = False) -> RawEvent:
        return RawEvent(app, message)

    channel.decode = decode
    return True
