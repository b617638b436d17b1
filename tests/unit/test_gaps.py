"""The stream gap healer: which holes count, patience, and the seek back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from faust.types import TP

from streamapp.gaps import MAX_SEEKS, Gap, StreamGapHealer, current_gaps, find_gap, hole_at_committed

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
class FakeInternals:
    """`compat.ConsumerInternals` as the healer uses it, over plain dicts."""

    committed_: dict[TP, int | None]
    acked_: dict[TP, list[int]]
    held: list[tuple[TP, int]] = field(default_factory=list)
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    position: dict[TP, int] = field(default_factory=dict)
    gap_hook: Any = None
    commit_guard: Any = None

    def committed(self) -> dict[TP, int | None]:
        return self.committed_

    def acked(self) -> dict[TP, list[int]]:
        return self.acked_

    def in_flight(self) -> list[tuple[TP, int]]:
        return self.held

    def acknowledge(self, tp: TP, start: int, end: int) -> None:
        self.acked_[tp] = sorted(set(self.acked_[tp]) | set(range(start, end)))

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def positions(self, tps: Any) -> dict[TP, int]:
        return {tp: p for tp, p in self.position.items() if tp in set(tps)}

    def replace_gap_acking(self, hold: Any) -> None:
        self.gap_hook = hold

    def refuse_commits_when(self, hole: Any) -> None:
        self.commit_guard = hole


class FakeTopics:
    def acks_enabled_for(self, topic: str) -> bool:
        return not topic.endswith("-changelog")


class FakeConsumer:
    def __init__(self) -> None:
        self.partitions = {EVENTS, OTHER}

    def assignment(self) -> set[TP]:
        return self.partitions


class FakeApp:
    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.topics = FakeTopics()


def healer(consumer: FakeInternals, app: FakeApp | None = None) -> StreamGapHealer:
    fake: Any = app or FakeApp()
    return StreamGapHealer(fake, interval=1.0, patience=5.0, internals=lambda _: cast(Any, consumer))


async def test_a_gap_is_redelivered_once_it_outlasts_the_patience() -> None:
    consumer = FakeInternals({EVENTS: 283, OTHER: 7}, {EVENTS: [305, 306], OTHER: [7, 8]})
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
    consumer = FakeInternals({EVENTS: 283, OTHER: None}, {EVENTS: [305], OTHER: []})
    service = healer(consumer)
    await service.check(now=100.0)
    consumer.committed_[EVENTS] = 290  # progress: a different gap
    assert await service.check(now=106.0) == []
    consumer.acked_[EVENTS] = [290]  # closed
    assert await service.check(now=112.0) == []
    consumer.acked_[EVENTS] = [305]
    assert await service.check(now=113.0) == []  # a new sighting
    assert consumer.seeks == []


async def test_held_events_in_the_hole_are_never_redelivered() -> None:
    consumer = FakeInternals({EVENTS: 283, OTHER: None}, {EVENTS: [305], OTHER: []})
    consumer.held = [(EVENTS, 283)]  # 300 is acked: not in flight
    service = healer(consumer)
    await service.check(now=100.0)
    assert await service.check(now=200.0) == []
    assert consumer.seeks == []


async def test_faust_no_longer_acks_a_hole_it_fetched_past() -> None:
    consumer = FakeInternals({EVENTS: 114}, {EVENTS: [114]})
    service = healer(consumer)
    await service.on_start()
    try:
        # What Faust's fetch loop calls after offset 116 follows 114: nothing is acked.
        await consumer.gap_hook(EVENTS, 115, 116)
        assert consumer.acked_[EVENTS] == [114]
        assert consumer.commit_guard is hole_at_committed
    finally:
        await service.stop()


async def test_a_hole_with_no_records_is_acked_after_max_seeks() -> None:
    consumer = FakeInternals({EVENTS: 10, OTHER: None}, {EVENTS: [12, 13], OTHER: []})
    service = healer(consumer)
    now = 100.0
    for _ in range(MAX_SEEKS):
        await service.check(now=now)
        assert await service.check(now=now + 6) != []
        now += 10
    assert consumer.seeks == [(EVENTS, 10)] * MAX_SEEKS
    await service.check(now=now)
    assert await service.check(now=now + 6) == []  # given up: acked instead of a fourth seek
    assert sorted(consumer.acked_[EVENTS]) == [10, 11, 12, 13]
    assert len(consumer.seeks) == MAX_SEEKS


def test_no_commit_over_a_one_offset_hole() -> None:
    # 287 is the next offset to read; 288 acked: Faust's own check (> 1) lets this through.
    assert hole_at_committed(287, [288, 289])
    assert not hole_at_committed(287, [287, 288])
    assert not hole_at_committed(None, [5, 6])  # nothing committed yet: Faust decides
    assert not hole_at_committed(287, [])


def test_skipped_last_events_are_a_gap_up_to_the_position() -> None:
    # Nothing acked after them: only the consumer's position shows the hole.
    assert find_gap(167, [], [], position=170) == Gap(167, 170)
    assert find_gap(167, [], [167], position=170) is None  # still being handled
    assert find_gap(170, [], [], position=170) is None  # caught up
    assert find_gap(167, [], [], position=None) is None


async def test_a_tail_gap_is_redelivered_and_changelogs_are_left_alone() -> None:
    changelog = TP("streamapp-task-events-changelog", 0)
    consumer = FakeInternals({EVENTS: 167, OTHER: 5, changelog: 0}, {EVENTS: [], OTHER: []})
    consumer.position = {EVENTS: 170, OTHER: 5, changelog: 900}
    app = FakeApp()
    app.consumer.partitions = {EVENTS, OTHER, changelog}
    service = healer(consumer, app)
    await service.check(now=0.0)
    assert await service.check(now=10.0) == [(EVENTS, Gap(167, 170))]
    assert consumer.seeks == [(EVENTS, 167)]
