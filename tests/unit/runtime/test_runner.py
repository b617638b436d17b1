"""The batch runtime: effects in one order, acks only after them, narrowing to the bad events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any, cast

import aiokafka.errors
import pytest

from streamapp.activity import RecentEvents
from streamapp.app import StreamApp
from streamapp.runtime.effects import INVALID, REJECTED, Effects, Invalid, Output, StateWrite
from streamapp.runtime.runner import BatchRuntime
from streamapp.settings import Settings
from streamapp.typing import Event


class Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = "in", 0, offset
        self.key = f"k{offset}".encode()
        self.generation_id, self.tracked = 1, False
        self.tp = ("in", 0)


class Item:
    def __init__(self, n: int) -> None:
        self.n = n
        self.value = str(n).encode()
        self.message = Message(n)


def items(numbers: range) -> list[Event]:
    return cast("list[Event]", [Item(n) for n in numbers])


class Journal:
    """One ordered log of everything observable: dead letters, rows, messages, acks."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.fail_publish: list[BaseException] = []

    async def dead_letter(self, event: Item, **kwargs: Any) -> None:
        self.log.append((f"dead:{kwargs['reason']}", event.n))

    async def send_all(self, producer: Any, outputs: Sequence[Output], **_: Any) -> None:
        if self.fail_publish:
            raise self.fail_publish.pop(0)
        for output in outputs:
            if b"big" in output.value:
                raise aiokafka.errors.MessageSizeTooLargeError()
        self.log += [("out", int(o.value.split(b":")[0])) for o in outputs]


class Pool:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        @contextlib.asynccontextmanager
        async def transaction() -> AsyncIterator[None]:
            yield

        yield SimpleNamespace(transaction=transaction)


class Doubler:
    """Plans a row and a message per event; raises for `poison`, refuses `invalid`."""

    name = "test.doubler"
    pipeline = "test"
    batch_size = 100
    batch_within = 0.01

    def __init__(self, poison: set[int], invalid: set[int], big: set[int] | None = None) -> None:
        self.poison, self.invalid, self.big = poison, invalid, big or set()
        self.plans = 0

    def plan(self, events: Sequence[Any]) -> Effects[int]:
        self.plans += 1
        effects: Effects[int] = Effects()
        for event in events:
            if event.n in self.poison:
                raise TypeError("can't compare offset-naive and offset-aware datetimes")
            if event.n in self.invalid:
                effects.invalid.append(Invalid(event, "bad"))
                continue
            effects.rows.append(event.n)
            suffix = b":big" if event.n in self.big else b""
            effects.outputs.append(Output("out", None, str(event.n).encode() + suffix))
        return effects


def runtime(journal: Journal, processor: Doubler, monkeypatch: pytest.MonkeyPatch) -> BatchRuntime[int]:
    monkeypatch.setattr("streamapp.runtime.produce.send_batches", journal.send_all)
    app = SimpleNamespace(
        settings=Settings(retry_initial_backoff=0.001, retry_max_backoff=0.002),
        dead_letters=SimpleNamespace(send_event=journal.dead_letter),
        db=SimpleNamespace(pool=Pool(journal)),
        producer=None,
        recent_events=RecentEvents(),
        conf=SimpleNamespace(producer_partitioner=None),
        consumer_generation_id=1,
    )

    async def write(conn: Any, rows: Sequence[int]) -> None:
        journal.log += [("row", n) for n in rows]

    return BatchRuntime(cast(StreamApp, app), processor, write=write)


async def test_a_plan_raising_for_one_event_of_100_dead_letters_it_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = Journal()
    rt = runtime(journal, Doubler(poison={37}, invalid={5}), monkeypatch)
    await rt.process(items(range(100)))
    dead = [n for kind, n in journal.log if kind.startswith("dead")]
    assert dead == [5, 37]
    assert ("dead:" + REJECTED, 37) in journal.log
    assert ("dead:" + INVALID, 5) in journal.log  # once, although planned again while narrowing
    applied = sorted(n for kind, n in journal.log if kind == "row")
    assert applied == sorted(set(range(100)) - {5, 37})
    # Every applied event reached both PostgreSQL and the topic.
    assert sorted(n for kind, n in journal.log if kind == "out") == applied


async def test_a_message_too_large_is_narrowed_down_to_its_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: MessageSizeTooLargeError was retried forever; now it dead-letters its event only."""
    journal = Journal()
    rt = runtime(journal, Doubler(poison=set(), invalid=set(), big={3}), monkeypatch)
    await asyncio.wait_for(rt.process(items(range(8))), 5)
    assert [n for kind, n in journal.log if kind == "dead:" + REJECTED] == [3]
    assert sorted({n for kind, n in journal.log if kind == "out"}) == [0, 1, 2, 4, 5, 6, 7]


async def test_a_broker_outage_is_retried_never_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal()
    journal.fail_publish = [aiokafka.errors.KafkaConnectionError(), aiokafka.errors.KafkaTimeoutError()]
    rt = runtime(journal, Doubler(poison=set(), invalid=set()), monkeypatch)
    await rt.process(items(range(4)))
    assert not [kind for kind, _ in journal.log if kind.startswith("dead")]
    assert [n for kind, n in journal.log if kind == "out"] == [0, 1, 2, 3]


async def test_nothing_is_acked_before_its_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.runtime.test_batches import FakeQueue, FakeStream, Stop

    journal = Journal()
    rt = runtime(journal, Doubler(poison={2}, invalid=set()), monkeypatch)
    stream = FakeStream(FakeQueue())

    class Acked(Item):
        def ack(self) -> bool:
            journal.log.append(("ack", self.n))
            return True

    for n in range(10):
        stream.channel.queue.put_nowait(Acked(n))
    task = asyncio.create_task(rt.run(cast(Any, stream)))
    await asyncio.sleep(0.2)
    stream.channel.queue.put_nowait(Stop())
    with pytest.raises(Stop):
        await asyncio.wait_for(task, 5)
    for n in range(10):
        acked_at = journal.log.index(("ack", n))
        done = ("dead:" + REJECTED, n) if n == 2 else ("out", n)
        assert journal.log.index(done) < acked_at
    assert sorted(n for kind, n in journal.log if kind == "ack") == list(range(10))


async def test_a_message_too_large_behind_faust_s_wrapper_is_still_permanent() -> None:
    """Found: Faust's producer raises ProducerSendError around aiokafka's errors, which classified
    every such error as permanent (a full buffer timing out dead-lettered valid records)."""
    import faust.exceptions

    from streamapp.errors import PayloadTooLarge
    from streamapp.publishing import send_all

    class Producer:
        def __init__(self, cause: BaseException) -> None:
            self.cause = cause

        async def send(self, *args: Any) -> Any:
            try:
                raise self.cause
            except aiokafka.errors.KafkaError as exc:
                raise faust.exceptions.ProducerSendError(f"Error while sending: {exc!r}") from exc

    out = [Output("t", b"k", b"v")]
    with pytest.raises(PayloadTooLarge):
        await send_all(Producer(aiokafka.errors.MessageSizeTooLargeError()), out, timeout=1)
    from streamapp.errors import DependencyUnavailable

    with pytest.raises(DependencyUnavailable):
        await send_all(Producer(aiokafka.errors.KafkaTimeoutError()), out, timeout=1)


class Ahead(Doubler):
    """A Doubler that plans ahead: each event also writes state (its key: n % 3), and the plan
    records which pending states it was given."""

    def __init__(self, poison: set[int], invalid: set[int], big: set[int] | None = None) -> None:
        super().__init__(poison, invalid, big)
        self.ahead: list[tuple[list[int], dict[Any, int]]] = []

    def plan(self, events: Sequence[Any]) -> Effects[int]:
        effects = super().plan(events)
        effects.state = [StateWrite(e.n % 3, e.n, 0) for e in events]
        return effects

    def plan_after(self, events: Sequence[Any], pending: Any) -> Effects[int]:
        self.ahead.append(([e.n for e in events], {k: w.value for k, w in pending.items()}))
        effects = Doubler.plan(self, events)
        self.plans -= 1  # counted apart
        effects.state = [StateWrite(e.n % 3, e.n, 0) for e in events]
        return effects


async def two_batches(rt: BatchRuntime[int], first: list[Event], second: list[Event]) -> None:
    """What `for_each_batch` does with `ahead`: the second batch planned while the first is applied."""
    handling = asyncio.ensure_future(rt.process(first))
    await rt.plan_ahead(first, second)
    await handling
    await rt.process(second)


async def test_the_next_batch_planned_ahead_is_used_after_a_clean_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal, processor = Journal(), Ahead(poison=set(), invalid=set())
    rt = runtime(journal, processor, monkeypatch)
    first, second = items(range(0, 4)), items(range(4, 8))
    await two_batches(rt, first, second)
    assert processor.plans == 1  # the second batch was not planned again
    # Planned against the states the first batch's plan left (keys n % 3, last writer wins).
    assert processor.ahead == [([4, 5, 6, 7], {0: 3, 1: 1, 2: 2})]
    assert [n for kind, n in journal.log if kind == "out"] == list(range(8))
    assert [n for kind, n in journal.log if kind == "row"] == list(range(8))


async def test_a_plan_ahead_is_thrown_away_when_the_batch_before_was_narrowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal, processor = Journal(), Ahead(poison=set(), invalid=set(), big={2})
    rt = runtime(journal, processor, monkeypatch)
    first, second = items(range(0, 4)), items(range(4, 8))
    await two_batches(rt, first, second)
    assert processor.ahead  # it was planned ahead ...
    # ... but the first batch's message 2 was too big: narrowed, so the second is planned again.
    assert ("dead:rejected", 2) in journal.log
    assert processor.plans == 6  # 1 + 4 narrowing the first batch, then the second batch its own
    assert [n for kind, n in journal.log if kind == "out"] == [0, 1, 3, 4, 5, 6, 7]


async def test_a_plan_ahead_is_thrown_away_after_a_rebalance(monkeypatch: pytest.MonkeyPatch) -> None:
    journal, processor = Journal(), Ahead(poison=set(), invalid=set())
    rt = runtime(journal, processor, monkeypatch)
    first, second = items(range(0, 4)), items(range(4, 8))
    handling = asyncio.ensure_future(rt.process(first))
    await rt.plan_ahead(first, second)
    await handling
    cast(Any, rt.app).consumer_generation_id = 2  # another worker may have changed the states
    await rt.process(second)
    assert processor.plans == 2
    assert [n for kind, n in journal.log if kind == "out"] == list(range(8))
