"""Redeliver stream offsets that Faust fetched but never handed to an agent.

Seen in the crash tests (tasks, licenses): when a worker starts while events
are streaming in, Faust resumes its stream partitions and seeks them to their
committed offsets while its fetcher is already delivering. A run of offsets
in the middle of a partition then reaches no agent: the agents ack the
events after it, Faust cannot commit past the hole, and the events in it
wait for the next restart to be redelivered. Nothing is lost in Kafka, but
the running worker never processes them (tasks missing their last events
for minutes, reports that do not match).

A variant is worse: when the fetcher hands over an offset after a hole, Faust
takes the hole for compaction and acks it (`Consumer._add_gap`), so the
skipped events are committed unprocessed and lost for good. None of our
acked topics is compacted (only changelogs are, and Faust does not ack
those), so here a hole is held open instead of acked.

Faust also commits over a hole of exactly one offset (see `guard_commits`).

This service watches Faust's own bookkeeping for such a hole and seeks the
partition back to it. Every agent is idempotent, so the events after the hole
that come again change nothing. A hole that is still there after
`MAX_SEEKS` redeliveries has no records in the broker (a compacted or
truncated topic): it is then acked the way Faust would have, with an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from faust.exceptions import ConsumerNotStarted
from mode import Service

from streamapp.compat import ConsumerInternals
from streamapp.logs import position

if TYPE_CHECKING:
    from streamapp.host import CoreHost

log = logging.getLogger(__name__)
MAX_SEEKS = 3


class Gap(NamedTuple):
    """Offsets [start, end) of one partition: not acked, while `end` and later are."""

    start: int
    end: int


def find_gap(
    committed: int | None,
    acked: Sequence[int],
    in_flight: Iterable[int],
    position: int | None = None,
) -> Gap | None:
    """The hole right after the committed offset, unless an agent still holds an event in it.

    `acked` holds the acked offsets Faust has not committed yet; `in_flight`
    the offsets handed to a stream and not acked (a slow batch, a concurrent
    agent); `position` the consumer's position (the next offset it hands
    out). With nothing acked, a hole runs up to the position: the last
    events of a partition can be skipped too, with none after them to show
    it. Without a committed offset there is nothing to measure from.
    """
    if committed is None:
        return None
    end = min(acked) if acked else position
    if end is None or end <= committed:
        return None
    if any(committed <= offset < end for offset in in_flight):
        return None
    return Gap(committed, end)


class StreamGapHealer(Service):
    """Every `interval` s: a gap seen unchanged for `patience` s is redelivered (seek back).

    It reads and adjusts Faust's consumer through `compat.ConsumerInternals` (the
    one module with private access); tests hand it a stand-in of that interface.
    """

    def __init__(
        self,
        app: CoreHost,
        *,
        interval: float,
        patience: float,
        internals: Callable[[Any], ConsumerInternals] = ConsumerInternals,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.interval = interval
        self.patience = patience
        self.healed = 0
        self._internals = internals
        self.consumer: ConsumerInternals | None = None
        self._first_seen: dict[Any, tuple[Gap, float]] = {}
        self._seeks: dict[tuple[Any, int], int] = {}

    async def on_start(self) -> None:
        consumer = self.consumer = self._internals(self.app.consumer)
        consumer.replace_gap_acking(self._hold_gap)
        consumer.refuse_commits_when(hole_at_committed)
        self.add_future(self._run())

    async def _hold_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        log.info(
            "%s: the fetch skipped offsets %d..%d; they stay unacked until redelivered",
            position(tp.topic, tp.partition, offset_from),
            offset_from,
            offset_to - 1,
        )

    async def _run(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval)
            try:
                await self.check()
            except ConsumerNotStarted:
                # A slow start (a busy host): nothing is consumed yet, so there is no gap.
                continue
            except Exception:
                # Advisory: a failed check must never take the worker down.
                log.exception("stream gap check failed")

    async def check(self, now: float | None = None) -> list[tuple[Any, Gap]]:
        """Seek back every partition whose gap outlasted `patience`; returns what it healed."""
        now = time.monotonic() if now is None else now
        consumer = self.consumer or self._internals(self.app.consumer)
        assigned = acked_assignment(self.app)
        gaps = current_gaps(
            assigned,
            consumer.committed(),
            consumer.acked(),
            consumer.in_flight(),
            consumer.positions(assigned),
        )
        healed: list[tuple[Any, Gap]] = []
        for tp, gap in gaps.items():
            seen = self._first_seen.get(tp)
            if seen is None or seen[0] != gap:
                self._first_seen[tp] = (gap, now)
                continue
            if now - seen[1] < self.patience:
                continue
            where = position(tp.topic, tp.partition, gap.start)
            del self._first_seen[tp]
            seeks = self._seeks.get((tp, gap.start), 0)
            if seeks >= MAX_SEEKS:
                log.error(
                    "%s: offsets %d..%d are still missing after %d redeliveries (compacted or "
                    "deleted in the broker?): acknowledging them unprocessed",
                    where,
                    gap.start,
                    gap.end - 1,
                    seeks,
                    extra={"position": where, "missing": gap.end - gap.start},
                )
                consumer.acknowledge(tp, gap.start, gap.end)
                del self._seeks[(tp, gap.start)]
                continue
            log.warning(
                "%s: %d offsets up to %d reached no agent for %.0f s; redelivering them",
                where,
                gap.end - gap.start,
                gap.end - 1,
                now - seen[1],
                extra={"position": where, "missing": gap.end - gap.start},
            )
            self._seeks[(tp, gap.start)] = seeks + 1
            await consumer.seek(tp, gap.start)
            self.healed += 1
            healed.append((tp, gap))
        for tp in set(self._first_seen) - set(gaps):
            del self._first_seen[tp]  # closed by itself
        for key in [key for key in self._seeks if key[0] not in gaps]:
            del self._seeks[key]  # closed by a redelivery
        return healed


def hole_at_committed(committed: int | None, acked: Sequence[int]) -> bool:
    """True while the first acked offset is past the committed one: never commit then.

    Faust's `Consumer._new_offset` lets a one-offset hole through: with 287
    committed (the next offset to read) and 288 the first acked, its check
    `min(acked) - committed > 1` is false and it commits past 287, which no
    agent has seen (the tasks crash test lost single events this way).
    """
    return bool(acked) and committed is not None and min(acked) > committed


def current_gaps(
    assignment: Iterable[Any],
    committed: Mapping[Any, int | None],
    acked: Mapping[Any, Sequence[int]],
    in_flight: Iterable[tuple[Any, int]],
    positions: Mapping[Any, int] | None = None,
) -> dict[Any, Gap]:
    held: dict[Any, list[int]] = {}
    for tp, offset in in_flight:
        held.setdefault(tp, []).append(offset)
    gaps = {}
    for tp in assignment:
        gap = find_gap(committed.get(tp), acked.get(tp, ()), held.get(tp, ()), (positions or {}).get(tp))
        if gap is not None:
            gaps[tp] = gap
    return gaps


def acked_assignment(app: Any) -> list[Any]:
    """The partitions this worker consumes whose events are acked and committed.

    Changelog partitions are left out: they are read to rebuild tables, never
    acked or committed.
    """
    acked = app.topics.acks_enabled_for
    return [tp for tp in app.consumer.assignment() if acked(tp.topic)]
