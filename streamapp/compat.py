"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

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
    producer = app.producer._ensure_producer()
    await producer.partitions_for(topic)


# --- End offsets from the fetch, not only ListOffsets (issue 14) -------------------
#
# Faust's table recovery (and `/lag`) ask `AIOKafkaConsumerThread._highwaters`, which
# asks aiokafka's `end_offsets` (ListOffsets, LATEST). The embedded Tansu 0.6.0
# answers that with the last record *batch's* base offset + 1: after batches of 10,
# 1 and 5 records it says 12 where the fetch's high watermark says 16. A worker that
# takes over a changelog partition then stops recovering before the changelog's
# tail and serves stale table values (tests/integration/test_broker_offsets.py,
# test_scale_out.py). A fetch from the last listed offset returns the broker's high
# watermark; the larger of the two is the end on Tansu and on Kafka alike (where
# they agree, or the fetch saw newer writes).

_FETCH_ROUNDS = 6


async def fetched_end_offsets(
    servers: list[str], auth: Mapping[str, Any], listed: Mapping[Any, int | None]
) -> dict[Any, int | None]:
    """`listed` (tp -> ListOffsets end), each raised to the high watermark a fetch reports."""
    wanted = {tp: end for tp, end in listed.items() if end is not None and end > 0}
    result: dict[Any, int | None] = dict(listed)
    if not wanted:
        return result
    probe = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, **auth)
    await probe.start()
    try:
        tps = {TopicPartition(tp[0], tp[1]): tp for tp in wanted}
        probe.assign(list(tps))
        for tp, original in tps.items():
            # From the last record the broker admits to: the fetch answers with the
            # batch holding it and the partition's high watermark.
            probe.seek(tp, wanted[original] - 1)
        pending = set(tps)
        for _ in range(_FETCH_ROUNDS):
            await probe.getmany(*pending, timeout_ms=500, max_records=1)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    result[tps[tp]] = max(wanted[tps[tp]], highwater)
                    pending.discard(tp)
            if not pending:
                break
    finally:
        await probe.stop()
    return result


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
        try:
            checked = await fetched_end_offsets(servers, auth, listed)
        except Exception as exc:  # a failed check must not fail recovery: the listed ends still work
            self.log.warning("could not check end offsets with a fetch (%r); using ListOffsets", exc)
            return listed
        return {tp: end for tp, end in checked.items() if end is not None}

    thread_cls._highwaters = _highwaters
    thread_cls._streamapp_listed_highwaters = listed_highwaters  # for the contract test
    thread_cls._streamapp_fetched_ends = True
