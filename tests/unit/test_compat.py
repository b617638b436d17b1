"""The contract of `streamapp.compat` with the installed Faust and aiokafka.

Every private name `compat` uses is checked here against the installed
versions: a Faust or aiokafka upgrade that renames or reshapes one fails this
test instead of silently turning a safeguard off. Private access is allowed in
this file and in `streamapp/compat.py` only (ruff SLF001 everywhere else).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

import aiokafka
import aiokafka.client
import aiokafka.consumer.subscription_state as subscription_state
import faust
import faust.transport.conductor
import faust.transport.consumer
import faust.transport.drivers.aiokafka as faust_aiokafka
import mode
import pytest
from faust.types import TP

from streamapp.app import StreamApp
from streamapp.compat import ConsumerInternals
from streamapp.gaps import hole_at_committed

EVENTS = TP("licenses.inbound", 0)
TESTED_WITH = {"faust": "0.15.3", "aiokafka": "0.14.0"}


def params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_versions_this_contract_was_written_against_are_installed() -> None:
    # Not a pin (pyproject pins them): a reminder to re-read compat.py's notes on an upgrade.
    assert faust.__version__ == TESTED_WITH["faust"]
    assert aiokafka.__version__ == TESTED_WITH["aiokafka"]


def test_faust_consumer_bookkeeping_names() -> None:
    consumer = faust.transport.consumer.Consumer
    init = inspect.getsource(consumer.__init__)
    for name in ("_acked", "_acked_index", "_committed_offset", "_unacked_messages"):
        assert f"self.{name} = " in init, name
    assert inspect.iscoroutinefunction(consumer._add_gap)
    assert params(consumer._add_gap) == ["self", "tp", "offset_from", "offset_to"]
    assert params(consumer._new_offset) == ["self", "tp"]
    # Faust's own callers go through the instance attribute, so replacing it takes effect.
    source = inspect.getsource(consumer)
    assert "await self._add_gap(" in source
    assert "self._new_offset(tp)" in source


def test_faust_aiokafka_thread_names() -> None:
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert inspect.iscoroutinefunction(thread.seek_wait)
    assert params(thread.seek_wait) == ["self", "partitions"]
    assert "self._consumer = " in inspect.getsource(thread)
    assert "self._thread = " in inspect.getsource(faust.transport.consumer.ThreadDelegateConsumer)
    assert issubclass(faust_aiokafka.Consumer, faust.transport.consumer.ThreadDelegateConsumer)


def test_aiokafka_names() -> None:
    init = inspect.getsource(aiokafka.AIOKafkaConsumer.__init__)
    assert "self._subscription = SubscriptionState(" in init
    assert "self._client = AIOKafkaClient(" in init
    # Returns an awaitable (a shielded future), which `compat.refresh_metadata` awaits.
    assert params(aiokafka.client.AIOKafkaClient.force_metadata_update) == ["self"]
    assert "return asyncio.shield(" in inspect.getsource(aiokafka.client.AIOKafkaClient.force_metadata_update)
    state = subscription_state
    assert isinstance(state.SubscriptionState.subscription, property)
    assert isinstance(state.Subscription.assignment, property)
    assert params(state.Assignment.state_value) == ["self", "tp"]
    assert isinstance(state.TopicPartitionState.has_valid_position, property)
    assert isinstance(state.TopicPartitionState.position, property)


async def test_consumer_internals_on_the_real_consumer(app: StreamApp) -> None:
    """The interface behaves on an actual Faust consumer (never started)."""
    consumer: Any = app.consumer
    internals = ConsumerInternals(consumer)
    consumer._committed_offset[EVENTS] = 10
    consumer._acked[EVENTS].extend([12, 13])
    consumer._acked_index[EVENTS].update([12, 13])
    assert internals.committed()[EVENTS] == 10
    assert list(internals.acked()[EVENTS]) == [12, 13]
    assert internals.in_flight() == []
    assert internals.positions([EVENTS]) == {}  # no aiokafka consumer yet

    internals.refuse_commits_when(hole_at_committed)
    assert consumer._new_offset(EVENTS) is None  # 10 and 11 were never acked
    internals.acknowledge(EVENTS, 10, 12)
    assert sorted(consumer._acked[EVENTS]) == [10, 11, 12, 13]
    assert consumer._new_offset(EVENTS) == 14  # Faust's arithmetic again

    seen: list[tuple[Any, int, int]] = []

    async def hold(tp: Any, start: int, end: int) -> None:
        seen.append((tp, start, end))

    internals.replace_gap_acking(hold)
    await consumer._add_gap(EVENTS, 20, 25)
    assert seen == [(EVENTS, 20, 25)]


class FakeThread:
    def __init__(self) -> None:
        self.seeks: list[dict[TP, int]] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.append(partitions)


async def test_the_seek_runs_in_the_consumer_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    class Consumer:
        _thread = FakeThread()

        async def seek(self, tp: TP, offset: int) -> None:
            raise AssertionError("Faust's Consumer.seek seeks from the wrong thread")

    consumer = Consumer()
    await ConsumerInternals(consumer).seek(EVENTS, 5)
    assert consumer._thread.seeks == [{EVENTS: 5}]


def test_the_consumer_thread_still_asks_highwaters_this_way() -> None:
    """The end-offset correction (compat.use_fetched_end_offsets) wraps this method."""
    from streamapp import compat

    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    compat.use_fetched_end_offsets()
    compat.use_fetched_end_offsets()  # idempotent: wrapped once
    original = thread_cls._streamapp_listed_highwaters  # type: ignore[attr-defined]
    assert thread_cls._highwaters is not original
    for method in (original, thread_cls._highwaters):
        assert inspect.iscoroutinefunction(method)
        assert list(inspect.signature(method).parameters) == ["self", "partitions"]
    # What the wrapper calls on Faust's side.
    assert callable(faust_aiokafka.server_list)
    assert callable(faust_aiokafka.credentials_to_aiokafka_auth)
    assert inspect.iscoroutinefunction(thread_cls.highwaters)


# --- the drain loop (compat.batched_drain_messages) -------------------------------------

# sha256 of `inspect.getsource(faust.transport.consumer.Consumer._drain_messages)` in
# faust-streaming 0.15.3, the loop `compat.batched_drain_messages` copies. Changed:
# compare the new upstream loop with the copy, carry the changes over, update this.
UPSTREAM_DRAIN_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def upstream_source(install: Any, kept: str, sha256: str) -> str:
    """Install a patch twice (idempotent), then the source of the upstream method it kept, checked."""
    import hashlib

    install()
    install()
    source = inspect.getsource(getattr(faust.transport.consumer.Consumer, kept))
    assert hashlib.sha256(source.encode()).hexdigest() == sha256
    return source


def test_the_drain_loop_replaced_is_the_one_copied() -> None:
    from streamapp import compat

    consumer = faust.transport.consumer.Consumer
    source = upstream_source(compat.use_batched_drain, "_streamapp_upstream_drain", UPSTREAM_DRAIN_SHA256)
    assert consumer._drain_messages is compat.batched_drain_messages
    # The one call replaced, and the names the copy reads.
    assert (
        "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()"
        in source
    )
    for name in ("_read_offset", "_commit_every", "_n_acked", "suspend_flow", "diag"):
        assert f"self.{name}" in inspect.getsource(consumer), name
    assert faust.transport.consumer.CONSUMER_FETCHING == "FETCHING"
    # Faust's fetcher calls it on the consumer instance's class attribute.
    assert "await consumer._drain_messages(self)" in inspect.getsource(faust.transport.consumer.Fetcher)
    assert params(mode.Service.wait_first) == ["self", "coros", "timeout"]


# --- the fetch loop's wait (compat.waking_wait_next_records) ------------------------------

# sha256 of `inspect.getsource(faust.transport.consumer.Consumer._wait_next_records)` in
# faust-streaming 0.15.3, the method `compat.waking_wait_next_records` copies.
UPSTREAM_WAIT_NEXT_RECORDS_SHA256 = "6218e1969a636b3ff504ad1b8e7ad58a113572e43d746cc96d684ed5153032c6"


def test_the_fetch_wait_replaced_is_the_one_copied() -> None:
    from streamapp import compat

    consumer = faust.transport.consumer.Consumer
    source = upstream_source(
        compat.use_waking_fetch, "_streamapp_upstream_wait_next_records", UPSTREAM_WAIT_NEXT_RECORDS_SHA256
    )
    assert consumer._wait_next_records is compat.waking_wait_next_records
    assert consumer.on_buffer_drop is compat.waking_on_buffer_drop
    assert "await self.sleep(1)" in source  # the one line replaced
    for name in ("not_waiting_next_records", "can_resume_flow", "flow_active", "_get_active_partitions"):
        assert name in inspect.getsource(consumer), name
    assert params(consumer._getmany) == ["self", "active_partitions", "timeout"]
    # The conductor takes the consumer's bound `on_buffer_drop` when it builds a handler.
    assert "app.consumer.on_buffer_drop" in inspect.getsource(faust.transport.conductor)


class Fetching(mode.Service):
    """What `compat.waking_wait_next_records` uses of a consumer: every partition paused (buffers full)."""

    flow_active = True

    def __init__(self) -> None:
        super().__init__()
        self.app = type("App", (), {"client_only": False})()
        self.not_waiting_next_records = asyncio.Event()
        self.can_resume_flow = asyncio.Event()
        self.active: set[TP] = set()
        self.fetched: list[set[TP]] = []

    def _get_active_partitions(self) -> set[TP]:
        return self.active

    async def _getmany(self, active_partitions: set[TP], timeout: float) -> dict[TP, list[Any]]:
        self.fetched.append(set(active_partitions))
        return {}

    def _streamapp_upstream_on_buffer_drop(self, tp: TP) -> None:
        self.active.add(tp)


async def test_a_buffer_drop_wakes_the_fetch_loop_at_once() -> None:
    # Found: with every partition paused, Faust's fetch loop slept a whole second
    # however soon the buffer drained; the agent then ran dry (a third idle).
    from streamapp.compat import waking_on_buffer_drop, waking_wait_next_records

    consumer = Fetching()
    waiting = asyncio.ensure_future(waking_wait_next_records(consumer, 1.0))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # paused: nothing fetched, waiting
    tp = TP("licenses.inbound", 0)
    waking_on_buffer_drop(consumer, tp)
    # Woken long before Faust's second (a generous bound for a loaded machine).
    records, _ = await asyncio.wait_for(waiting, 0.5)
    assert records == {}
    assert consumer.fetched == []
    # The next round fetches the partition that drained.
    await waking_wait_next_records(consumer, 1.0)
    assert consumer.fetched == [{tp}]


async def test_without_a_drop_the_wait_still_ends_within_the_second() -> None:
    from streamapp.compat import waking_wait_next_records

    consumer = Fetching()
    started = asyncio.get_running_loop().time()
    assert await waking_wait_next_records(consumer, 1.0) == ({}, set())
    assert 0.9 <= asyncio.get_running_loop().time() - started < 5


# --- acks in one critical section (compat.ack_messages) ---------------------------------


def ack_scenario(consumer: Any, inbound: str) -> list[Any]:
    """Messages covering every branch of Faust's ack, the consumer's bookkeeping reset."""
    from collections import defaultdict
    from weakref import WeakSet

    from faust.types.tuples import ConsumerMessage

    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._unacked_messages = WeakSet()
    consumer._n_acked = 0
    consumer._committed_offset[TP(inbound, 0)] = 4

    def message(topic: str, partition: int, offset: int, refcount: int = 1, acked: bool = False) -> Any:
        tp = TP(topic, partition)
        m = ConsumerMessage(topic, partition, offset, 0.0, 0, [], b"k", b"v", None, 1, 1, tp)
        m.refcount, m.acked = refcount, acked
        consumer._unacked_messages.add(m)
        return m

    twice = message(inbound, 0, 6, refcount=2)
    return [
        message(inbound, 0, 5),
        twice,  # two references: the first ack is not the final one
        message(inbound, 0, 3),  # below the committed offset
        message("not-consumed-by-an-agent", 0, 1),  # a topic without acks
        message(inbound, 0, 7, acked=True),
        message(inbound, 0, 5),  # the same offset again
        message(inbound, 0, 8, refcount=0),
        message(inbound, 1, 0),  # nothing committed yet
        twice,  # its second ack, in the same batch
    ]


def bookkeeping(consumer: Any, messages: list[Any]) -> Any:
    unacked = {id(m) for m in consumer._unacked_messages}
    return (
        {tp: list(offsets) for tp, offsets in consumer._acked.items()},
        {tp: set(offsets) for tp, offsets in consumer._acked_index.items()},
        consumer._n_acked,
        [(m.acked, m.refcount, id(m) in unacked) for m in messages],
    )


async def test_acking_a_batch_at_once_is_acking_each_message(app: StreamApp) -> None:
    from streamapp.compat import ack_messages

    consumer: Any = app.consumer
    inbound = "licenses.inbound"
    cast(Any, app.topics)._acking_topics.add(inbound)  # as the conductor does for a topic an agent consumes
    assert app.topics.acks_enabled_for(inbound)
    assert not app.topics.acks_enabled_for("not-consumed-by-an-agent")

    one_by_one = ack_scenario(consumer, inbound)
    for m in one_by_one:
        m.ack(consumer)
    expected = bookkeeping(consumer, one_by_one)

    at_once = ack_scenario(consumer, inbound)
    waiting = consumer._waiting_for_ack = asyncio.get_running_loop().create_future()
    ack_messages(consumer, at_once)
    assert bookkeeping(consumer, at_once) == expected
    assert waiting.done()  # `Consumer.wait_empty` is woken, as by `Consumer.ack`
    # Sanity: the scenario does reach both outcomes.
    assert expected[2] == 4
    assert expected[0] == {TP(inbound, 0): [5, 8, 6], TP(inbound, 1): [0]}


class Draining(mode.Service):
    """What `compat.deliver` uses of a consumer: `wait_first` and `suspend_flow`."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()
        self.races = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.races += 1
        return await super().wait_first(*coros, timeout=timeout)


async def test_a_delivery_that_does_not_wait_runs_no_race() -> None:
    from streamapp.compat import deliver

    consumer, delivered = Draining(), []

    async def callback(message: str) -> None:
        delivered.append(message)

    await deliver(consumer, callback, "m1")
    assert delivered == ["m1"]
    assert consumer.races == 0


async def test_a_delivery_that_waits_is_finished_in_the_race() -> None:
    from streamapp.compat import deliver

    consumer, room = Draining(), asyncio.get_running_loop().create_future()
    delivered: list[str] = []

    async def callback(message: str) -> str:
        await asyncio.sleep(0)  # a bare yield first
        delivered.append(await room)  # a full queue: waits for room
        return message

    task = asyncio.ensure_future(deliver(consumer, callback, "m1"))
    await asyncio.sleep(0.01)
    assert not task.done()
    room.set_result("room")
    await asyncio.wait_for(task, 1)
    assert delivered == ["room"]
    assert consumer.races == 1


async def test_a_waiting_delivery_is_given_up_when_the_flow_stops() -> None:
    from streamapp.compat import deliver

    consumer, outcome = Draining(), []

    async def callback(message: str) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never room
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    task = asyncio.ensure_future(deliver(consumer, callback, "m1"))
    await asyncio.sleep(0.01)
    consumer.suspend_flow.set()  # a rebalance
    await asyncio.wait_for(task, 1)
    await asyncio.sleep(0)
    assert outcome == ["cancelled"]


async def test_a_delivery_error_propagates_whether_or_not_it_waited() -> None:
    from streamapp.compat import deliver

    consumer = Draining()

    async def at_once(message: str) -> None:
        raise ValueError(message)

    async def after_a_wait(message: str) -> None:
        await asyncio.sleep(0.001)
        raise KeyError(message)

    with pytest.raises(ValueError, match="m1"):
        await deliver(consumer, at_once, "m1")
    with pytest.raises(KeyError, match="m2"):
        await deliver(consumer, after_a_wait, "m2")


# --- raw events (compat.decode_raw_events) -----------------------------------------------


async def test_raw_events_carry_what_fausts_decode_gives_for_our_topics(app: StreamApp) -> None:
    from faust.types import Message

    from streamapp.compat import RawEvent, decode_raw_events, is_raw_topic
    from streamapp.topics import pipeline_topic

    topic = pipeline_topic(app, "perf.raw-events")
    faust_decode = topic.decode
    messages = [
        Message("perf.raw-events", 1, 7, 0.0, 0, [("trace", b"t1")], b"c1", b'{"a": 1}', None),
        Message("perf.raw-events", 0, 8, 0.0, 0, None, None, b"not json at all", None),
        Message("perf.raw-events", 0, 9, 0.0, 0, [], b"c2", None, None),
    ]
    expected = [await faust_decode(m, propagate=True) for m in messages]
    assert is_raw_topic(topic)
    assert decode_raw_events(topic)
    for message, theirs in zip(messages, expected, strict=True):
        ours = await topic.decode(message, propagate=True)
        assert isinstance(ours, RawEvent)
        assert (ours.key, ours.value, ours.headers, ours.message) == (
            theirs.key,
            theirs.value,
            theirs.headers,
            theirs.message,
        )
    # Faust's Event.ack is the message's ack by the app's consumer: RawEvent.ack does the same.
    assert "return self.message.ack(self.app.consumer)" in inspect.getsource(faust.Event.ack)
    # The conductor looks the decode up on the channel for every message (not bound once).
    assert "await chan.decode(message, propagate=True)" in inspect.getsource(
        faust.transport.conductor.ConductorCompiler.build
    )


def test_channels_that_are_not_raw_topics_keep_fausts_decode(app: StreamApp) -> None:
    from streamapp.compat import decode_raw_events

    typed = app.topic("perf.typed", key_type=str, value_type=bytes)
    json_values = app.topic("perf.json", key_type=bytes, value_type=bytes, value_serializer="json")
    channel = app.channel()
    for other in (typed, json_values, channel):
        before = other.decode
        assert not decode_raw_events(other)
        assert other.decode == before


def test_the_producer_names_the_record_batch_sends_use() -> None:
    """`compat.kafka_producer` and `runtime/produce.py` against the installed Faust and aiokafka."""
    assert params(faust_aiokafka.Producer._ensure_producer) == ["self"]
    assert "return self._producer" in inspect.getsource(faust_aiokafka.Producer._ensure_producer)
    producer = aiokafka.AIOKafkaProducer
    assert params(producer.create_batch) == ["self"]
    assert params(producer.send_batch) == ["self", "batch", "topic", "partition"]
    assert inspect.iscoroutinefunction(producer.partitions_for)
    # What `send` hands the partitioner: the topic's partitions as listed from the metadata set.
    assert "all_partitions = list(self._metadata.partitions_for_topic(topic))" in inspect.getsource(
        producer._partition
    )
