"""The stream gap healer: which holes count, patience, and the seek back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from streamapp.gaps import MAX_SEEKS, Gap, StreamGapHealer, current_gaps, find_gap

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


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer


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
