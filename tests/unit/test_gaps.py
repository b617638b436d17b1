"""The stream gap healer: which holes count, patience, and the seek back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from streamapp.gaps import MAX_SEEKS, Gap, StreamGapHealer, current_gaps, find_gap, guard_commits

EVENTS = TP("tasks.events", 0)
OTHER = TP("tasks.events", 1)


def test_a_hole_after_the_committed_offset_is_a_gap() -> None:
    assert find_gap(283, [305, 306, 307], []) == Gap(283, 305)


def test_no_gap_while_acks_are_contiguous_or_absent() -> None:
    assert find_gap(283, [283, 284], []) is None
    assert find_gap(283, [], []) is None
    assert find_gap(None, [305], []) is None  # nothing committed: nothing to measure from


def test_an_event_an_agent_still_holds_is_not_a_gap() -> None:
    # A slow batch or a concurrent agent: offsets 283.. are in flight, later ones acked.
    assert find_gap(283, [290], [283, 284]) is None
    assert find_gap(283, [290], [295]) == Gap(283, 290)  # in flight after the hole: still a hole


def test_current_gaps_looks_only_at_assigned_partitions() -> None:
    gaps = current_gaps(
        [EVENTS],
        {EVENTS: 10, OTHER: 10},
        {EVENTS: [12], OTHER: [15]},
        [(OTHER, 10)],
    )
    assert gaps == {EVENTS: Gap(10, 12)}


@dataclass
class Message:
    tp: TP
    offset: int
    acked: bool = False


@dataclass
class FakeConsumer:
    committed: dict[TP, int | None]
    acked: dict[TP, list[int]]
    held: list[Message] = field(default_factory=list)
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    index: dict[TP, set[int]] = field(default_factory=dict)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        raise AssertionError("Faust's gap-acking must be replaced")

    @property
    def _acked_index(self) -> dict[TP, set[int]]:
        for tp, offsets in self.acked.items():
            self.index.setdefault(tp, set()).update(offsets)
        return self.index

    def assignment(self) -> set[TP]:
        return {EVENTS, OTHER}

    @property
    def _committed_offset(self) -> dict[TP, int | None]:
        return self.committed

    @property
    def _acked(self) -> dict[TP, list[int]]:
        return self.acked

    @property
    def _unacked_messages(self) -> list[Message]:
        return self.held

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def _new_offset(self, tp: TP) -> int | None:
        raise AssertionError("not called by the healer itself")


class FakeTopics:
    def acks_enabled_for(self, topic: str) -> bool:
        return not topic.endswith("-changelog")


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.topics = FakeTopics()


def healer(consumer: FakeConsumer) -> StreamGapHealer:
    app: Any = FakeApp(consumer)
    return StreamGapHealer(app, interval=1.0, patience=5.0)


async def test_a_gap_is_redelivered_once_it_outlasts_the_patience() -> None:
    consumer = FakeConsumer({EVENTS: 283, OTHER: 7}, {EVENTS: [305, 306], OTHER: [7, 8]})
    service = healer(consumer)
    assert await service.check(now=100.0) == []  # first sighting
    assert await service.check(now=103.0) == []  # not patient enough yet
    assert await service.check(now=105.5) == [(EVENTS, Gap(283, 305))]
    assert consumer.seeks == [(EVENTS, 283)]
    assert service.healed == 1
    # Seen afresh after a seek: a second seek needs the full patience again.
    assert await service.check(now=106.0) == []
    assert consumer.seeks == [(EVENTS, 283)]


async def test_a_gap_that_changes_or_closes_restarts_the_clock() -> None:
    consumer = FakeConsumer({EVENTS: 283, OTHER: None}, {EVENTS: [305], OTHER: []})
    service = healer(consumer)
    await service.check(now=100.0)
    consumer.committed[EVENTS] = 290  # progress: a different gap
    assert await service.check(now=106.0) == []
    consumer.acked[EVENTS] = [290]  # closed
    assert await service.check(now=112.0) == []
    consumer.acked[EVENTS] = [305]
    assert await service.check(now=113.0) == []  # a new sighting
    assert consumer.seeks == []


async def test_held_events_in_the_hole_are_never_redelivered() -> None:
    consumer = FakeConsumer({EVENTS: 283, OTHER: None}, {EVENTS: [305], OTHER: []})
    consumer.held = [Message(EVENTS, 283), Message(EVENTS, 300, acked=True)]
    service = healer(consumer)
    await service.check(now=100.0)
    assert await service.check(now=200.0) == []
    assert consumer.seeks == []


async def test_faust_no_longer_acks_a_hole_it_fetched_past() -> None:
    consumer = FakeConsumer({EVENTS: 114}, {EVENTS: [114]})
    service = healer(consumer)
    await service.on_start()
    try:
        # What Faust's fetch loop calls after offset 116 follows 114: nothing is acked.
        await consumer._add_gap(EVENTS, 115, 116)
        assert consumer.acked[EVENTS] == [114]
    finally:
        await service.stop()


async def test_a_hole_with_no_records_is_acked_after_max_seeks() -> None:
    consumer = FakeConsumer({EVENTS: 10, OTHER: None}, {EVENTS: [12, 13], OTHER: []})
    service = healer(consumer)
    now = 100.0
    for _ in range(MAX_SEEKS):
        await service.check(now=now)
        assert await service.check(now=now + 6) != []
        now += 10
    assert consumer.seeks == [(EVENTS, 10)] * MAX_SEEKS
    await service.check(now=now)
    assert await service.check(now=now + 6) == []  # given up: acked instead of a fourth seek
    assert sorted(consumer.acked[EVENTS]) == [10, 11, 12, 13]
    assert len(consumer.seeks) == MAX_SEEKS


class FakeThread:
    def __init__(self) -> None:
        self.seeks: list[dict[TP, int]] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.append(partitions)


async def test_the_seek_runs_in_the_consumer_thread_when_there_is_one() -> None:
    consumer: Any = FakeConsumer({EVENTS: 5}, {EVENTS: [9]})
    consumer._thread = FakeThread()
    service = healer(consumer)
    await service.check(now=0.0)
    await service.check(now=10.0)
    assert consumer._thread.seeks == [{EVENTS: 5}]
    assert consumer.seeks == []  # not Faust's Consumer.seek, which seeks from this thread


class Committing:
    """Faust's commit arithmetic, reduced to what the guard wraps."""

    def __init__(self, committed: int | None, acked: list[int]) -> None:
        self._committed_offset = {EVENTS: committed}
        self._acked = {EVENTS: acked}
        self.asked: list[TP] = []

    def _new_offset(self, tp: TP) -> int | None:
        self.asked.append(tp)
        return max(self._acked[tp]) + 1


def test_no_commit_over_a_one_offset_hole() -> None:
    # 287 is the next offset to read; 288 acked: Faust's own check (> 1) lets this through.
    consumer = Committing(287, [288, 289])
    assert guard_commits(consumer, consumer._new_offset)(EVENTS) is None
    assert consumer.asked == []


def test_contiguous_acks_commit_as_faust_would() -> None:
    consumer = Committing(287, [287, 288])
    assert guard_commits(consumer, consumer._new_offset)(EVENTS) == 289
    nothing_committed_yet = Committing(None, [5, 6])
    assert guard_commits(nothing_committed_yet, nothing_committed_yet._new_offset)(EVENTS) == 7


def test_skipped_last_events_are_a_gap_up_to_the_position() -> None:
    # Nothing acked after them: only the consumer's position shows the hole.
    assert find_gap(167, [], [], position=170) == Gap(167, 170)
    assert find_gap(167, [], [167], position=170) is None  # still being handled
    assert find_gap(170, [], [], position=170) is None  # caught up
    assert find_gap(167, [], [], position=None) is None


class State:
    def __init__(self, position: int | None) -> None:
        self.has_valid_position = position is not None
        self.position = position


class Assignment:
    def __init__(self, states: dict[TP, State]) -> None:
        self.states = states

    def state_value(self, tp: TP) -> State | None:
        return self.states.get(tp)


def aiokafka_positions(consumer: Any, positions: dict[TP, int | None]) -> None:
    """The attribute path `consumer_positions` reads aiokafka's positions from."""
    subscription = type("Sub", (), {"assignment": Assignment({tp: State(p) for tp, p in positions.items()})})
    aio = type("Aio", (), {"_subscription": type("S", (), {"subscription": subscription})})
    consumer._thread = type("Thread", (), {"_consumer": aio, "seek_wait": FakeThread.seek_wait})()
    consumer._thread.seeks = []


async def test_a_tail_gap_is_redelivered_and_changelogs_are_left_alone() -> None:
    changelog = TP("streamapp-task-events-changelog", 0)
    consumer: Any = FakeConsumer({EVENTS: 167, OTHER: 5, changelog: 0}, {EVENTS: [], OTHER: []})
    consumer.assignment = lambda: {EVENTS, OTHER, changelog}
    aiokafka_positions(consumer, {EVENTS: 170, OTHER: 5, changelog: 900})
    service = healer(consumer)
    await service.check(now=0.0)
    assert await service.check(now=10.0) == [(EVENTS, Gap(167, 170))]
    assert consumer._thread.seeks == [{EVENTS: 167}]
