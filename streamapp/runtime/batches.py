"""The batch loop under the runtime: take events in batches, ack each only once its batch was handled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from streamapp.compat import ConsumerInternals, RawEvent, ack_messages, decode_raw_events
from streamapp.logs import position
from streamapp.retry import backoff_delays
from streamapp.typing import Event, Stream

log = logging.getLogger(__name__)


async def for_each_batch(
    stream: Stream,
    size: int,
    within: float,
    handle: Callable[[Sequence[Event]], Awaitable[None]],
    name: str,
    *,
    retry_initial: float = 0.2,
    retry_max: float = 30.0,
    contiguous: bool = True,
    ahead: Callable[[Sequence[Event], Sequence[Event]], Awaitable[None]] | None = None,
) -> None:
    """Feed `handle` batches of up to `size` events, waiting at most `within` s for a partial one.

    The events are taken straight from the agent's channel queue, where Faust's
    conductor puts them, not through the stream's per-event iterator: that path
    (sensors, context variables, one `await` and several calls per message) cost
    ~95 us of CPU per record, the largest single cost of the licenses pipeline.
    What the iterator does that matters is kept here, per event: a message is
    tracked as unacknowledged (so a rebalance waits for its batch, and the gap
    healer knows an agent holds it) and acknowledged through Faust (`Event.ack`,
    so Faust's commit bookkeeping stays the one that commits).

    Not Faust's `take_events` either: in the crash tests it acked (and so
    committed) single events that were in none of the batches it yielded.

    `handle` (the runtime) applies or dead-letters every event of a batch. If it
    raises all the same, nothing of the batch is acked: the same batch is handed
    to it again after a backoff, for as long as it takes. Acking it would commit
    events that were never applied (they were lost this way before); stopping
    the agent would stall the partition until a restart. The lag shows the stall.

    With `ahead`, the next batch is taken while `handle` works on the current one
    (mostly waiting for PostgreSQL and the broker) and `ahead(current, next)` is
    awaited then, so the runtime can plan it in the meantime. Batches are still
    handled one after the other, in order, and each acked only after its `handle`.
    """
    taker = BatchTaker(stream, contiguous=contiguous)
    batch: list[Event] = []
    while True:
        if not batch:
            if taker.ended:
                break
            batch = await taker.next_batch(size, within)
            continue
        following: list[Event] = []
        handling = asyncio.ensure_future(_handle(handle, batch, name, retry_initial, retry_max))
        # The next batch, taken while this one is handled. Never cancelled once started
        # (events it took would be tracked, and neither handled nor acked): awaited after
        # this batch's ack, so a batch is acked as soon as it is handled, next events or not.
        taking: asyncio.Future[list[Event]] | None = None
        try:
            if ahead is not None and not taker.ended:
                await asyncio.sleep(0)  # `handle` starts (and plans) first
                if not handling.done():
                    taking = asyncio.ensure_future(taker.next_batch(size, within))
                    await asyncio.wait((handling, taking), return_when=asyncio.FIRST_COMPLETED)
                    if not handling.done() and not taking.cancelled() and taking.exception() is None:
                        following = taking.result()
                        if following:
                            try:
                                await ahead(batch, following)
                            except Exception:  # only a head start: `handle` plans the batch then
                                log.exception("%s: planning the next batch ahead failed", name)
            await handling
        except BaseException:
            # Stopping (cancelled): this batch is acked only if its handling finished.
            for task in (handling, taking):
                if task is not None and not task.done():
                    task.cancel()
            with contextlib.suppress(BaseException):
                await handling
            if not handling.cancelled() and handling.exception() is None:
                taker.ack(batch)
            # A batch taken ahead is never handled now: no longer held by this agent
            # (a stop or rebalance must not wait for it; its next owner reads it again).
            taker.release(following)
            raise
        taker.ack(batch)
        if taking is not None:
            # An error thrown into the channel is raised here, after this batch's ack.
            following = await taking
        batch = following


async def _handle(
    handle: Callable[[Sequence[Event]], Awaitable[None]],
    batch: list[Event],
    name: str,
    retry_initial: float,
    retry_max: float,
) -> None:
    """`handle(batch)` until it returns (see `for_each_batch`)."""
    delays = backoff_delays(retry_initial, retry_max)
    while True:
        try:
            await handle(batch)
            return
        except Exception:
            first = batch[0].message
            where = position(first.topic, first.partition, first.offset)
            delay = next(delays)
            log.exception(
                "%s: a batch of %d from %s was not applied (nothing of it acked), retrying in %.1fs",
                name,
                len(batch),
                where,
                delay,
                extra={"position": where},
            )
            await asyncio.sleep(delay)


# How often the taker seeks back to the same missing offset before it takes the
# hole for records that do not exist (compaction, transaction markers) and goes on.
MAX_SEEKS = 3
# How long a seek back gets to deliver the missing offset before it is asked again, s.
SEEK_PATIENCE = 2.0


class BatchTaker:
    """Cuts batches from an agent's channel queue (an `aiter` of its topic, subscribed to the conductor).

    With `contiguous` (the default), a partition's events are taken in offset
    order with no hole: an event past the next expected offset is not taken,
    and the consumer is sought back to the missing one. Faust can skip a fetched
    run of offsets when a worker starts while events stream in (README, "Known
    Faust behaviour"); processed later, out of order, those events were judged
    stale against the state their successors left, and their changes were lost
    (the licenses crash test: 224 of 5,000 records). The gap healer
    (`streamapp/gaps.py`) stays as the safety net for holes at a partition's tail.
    Agents whose events are independent and shared between concurrent actors
    (merchants.heavy) turn it off.

    Where the holes come from (measured, `issues` #10 note): during table
    recovery Faust resumes message flow, seeks the stream partitions to their
    committed offsets, then calls `flow_control.resume()` again, which empties
    every agent's channel queue while the fetcher's position has moved past what
    was in it. Not the embedded broker: its fetches skip nothing.
    """

    def __init__(self, stream: Stream, *, contiguous: bool = True) -> None:
        app = stream.app
        self.app = app
        # `App.stream` made the channel an iterator clone subscribed to the conductor.
        self.queue: Any = cast(Any, stream.channel).queue
        # Events without Faust's decode and Event object per message (raw-bytes topics,
        # all of ours): the batch reads only the message, key and value.
        decode_raw_events(stream.channel)
        self.acking_topics: set[str] = app.topics.acking_topics
        self.unacked = app.consumer.unacked
        self.internals = ConsumerInternals(app.consumer)
        self.contiguous = contiguous
        self.generation = app.consumer_generation_id
        self.expected: dict[Any, int] = {}
        # Partition -> (the offset sought, when, how often).
        self.seeking: dict[Any, tuple[int, float, int]] = {}
        self.to_seek: dict[Any, int] = {}
        # Faust stops an actor by throwing StopAsyncIteration into its channel
        # (`Actor.cancel`, on shutdown and around rebalances): the stream ends
        # then, after the batch already taken is handled.
        self.ended = False
        self.dropped = 0
        self.held = 0

    async def next_batch(self, size: int, within: float) -> list[Event]:
        """Wait for one event, then take more until `size` or until `within` s have passed.

        Raises any other error thrown into the channel (the agent crashes with it, as in Faust).
        """
        queue = self.queue
        batch: list[Event] = []
        try:
            self._take(await queue.get(), batch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while len(batch) < size:
                if not queue.empty():
                    self._take(queue.get_nowait(), batch)
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                self._take(item, batch)
        except StopAsyncIteration:
            self.ended = True
        if self.dropped:
            log.info(
                "%d events fetched before a rebalance dropped unacked (their next owner reads them)",
                self.dropped,
            )
            self.dropped = 0
        await self._seek_back()
        return batch

    def ack(self, events: Sequence[Event]) -> None:
        """Ack `events` through Faust (`Event.ack`); a batch of `RawEvent`s in one critical section."""
        if all(isinstance(event, RawEvent) for event in events):
            ack_messages(self.app.consumer, [event.message for event in events])
        else:
            for event in events:
                event.ack()

    def release(self, events: Sequence[Event]) -> None:
        """Stop tracking taken `events` that will not be handled (unacked, so read again later)."""
        for event in events:
            message = event.message
            if message.tracked:
                message.tracked = False
                self.unacked.discard(message)

    async def _seek_back(self) -> None:
        to_seek, self.to_seek = self.to_seek, {}
        for tp, offset in to_seek.items():
            where = position(tp.topic, tp.partition, offset)
            log.warning(
                "%s: the fetch skipped this offset; %d later events held back, seeking back to it",
                where,
                self.held,
                extra={"position": where},
            )
            await self.internals.seek(tp, offset)
        self.held = 0

    def _take(self, item: Any, batch: list[Event]) -> None:
        message = getattr(item, "message", None)
        if message is None:
            log.warning("%r on an agent channel is not an event: ignored", type(item).__name__)
            return
        app = self.app
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            # Fetched before a rebalance: the partition's next owner (maybe this
            # worker again) reads it from the committed offset. Faust acks such a
            # message; that could let a commit pass it unprocessed, so it is
            # dropped without an ack (and was never tracked).
            self.dropped += 1
            return
        if message.topic in self.acking_topics:
            if self.contiguous and not self._in_order(message):
                return
            if not message.tracked:
                message.tracked = True  # as Faust's stream iterator does (Consumer.track_message)
                self.unacked.add(message)
        batch.append(item)

    def _in_order(self, message: Any) -> bool:
        """True to take `message`; False to hold it back behind a hole (and seek back to the hole)."""
        if self.generation != self.app.consumer_generation_id:
            # A rebalance: Faust seeks every partition to its committed offset again.
            self.generation = self.app.consumer_generation_id
            self.expected.clear()
            self.seeking.clear()
        tp, offset = message.tp, message.offset
        expected = self.expected.get(tp)
        if expected is None:
            # Where Faust started the partition: its committed offset, or, never
            # committed, the beginning (`consumer_auto_offset_reset` is earliest). A
            # topic whose beginning was deleted costs MAX_SEEKS futile seeks, once.
            expected = self.internals.committed().get(tp) or 0
        if offset > expected:
            loop = asyncio.get_running_loop()
            sought = self.seeking.get(tp)
            if sought is None or sought[0] != expected:
                self.seeking[tp] = (expected, loop.time(), 1)
                self.to_seek[tp] = expected
            elif sought[2] >= MAX_SEEKS and loop.time() - sought[1] > SEEK_PATIENCE:
                where = position(tp.topic, tp.partition, expected)
                log.error(
                    "%s: offsets %d..%d still missing after %d seeks (compacted, or transaction "
                    "markers?): going on without them",
                    where,
                    expected,
                    offset - 1,
                    sought[2],
                    extra={"position": where, "missing": offset - expected},
                )
                del self.seeking[tp]
                self.expected[tp] = offset + 1
                return True
            elif loop.time() - sought[1] > SEEK_PATIENCE:
                self.seeking[tp] = (expected, loop.time(), sought[2] + 1)
                self.to_seek[tp] = expected
            self.held += 1
            return False
        self.seeking.pop(tp, None)
        self.expected[tp] = offset + 1
        return True
