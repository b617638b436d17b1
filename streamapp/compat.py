"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

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
