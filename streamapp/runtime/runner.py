"""The one place the order of effects is written: plan a batch, apply it, and only then ack it.

Per batch, each step durable before the next (quix-streams' `Checkpoint.commit()`
order, with dead letters first):

  1. plan: the processor's pure `plan(events)` -> `Effects` (reads table state);
  2. dead letters of the events the plan refused, acknowledged by the broker;
  3. PostgreSQL: the batch's rows in one idempotent transaction;
  4. output messages: all sent, then one wait for all acknowledgements;
  5. table state: the changelog acknowledged first, then the local table;
  6. the caller (`batches.for_each_batch`) acks the events.

A crash anywhere replays the batch from the old state: outputs derive their ids
from the source events, so what was already written changes nothing.

If a step raises, nothing of the batch is acked. A transient error (errors
classified by `is_retriable`) is retried with backoff in that step. Any other
error narrows the batch down: it is split in halves and each half planned and
applied again, in order, until the events that cause it stand alone; those
alone are dead-lettered (`rejected`) and their batch-mates proceed. Re-planning
is sound because table state is written last, so a half sees exactly the state
the events before it left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import asyncpg
from faust.types import TableT

from streamapp import metrics
from streamapp.compat import store_local
from streamapp.errors import describe
from streamapp.logs import position
from streamapp.retry import retry_transient
from streamapp.runtime.batches import for_each_batch
from streamapp.runtime.effects import INVALID, REJECTED, Effects, Invalid, StateWrite
from streamapp.runtime.produce import publish
from streamapp.typing import Event, Stream

if TYPE_CHECKING:
    from streamapp.host import Host

R = TypeVar("R")
log = logging.getLogger(__name__)

Writer = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[None]]


class Processor(Protocol[R]):
    """What a batching agent declares, once. The runtime does everything else."""

    name: str  # the agent's name, in logs
    pipeline: str  # in dead letters
    batch_size: int
    batch_within: float  # the longest a partial batch waits, s

    def plan(self, events: Sequence[Event]) -> Effects[R]:
        """Pure: the effects of `events` given the current table state. Refuse bad events
        by returning them in `Effects.invalid`; an exception narrows the batch down."""
        ...


class BatchRuntime(Generic[R]):
    """Runs one processor: batches from its stream, effects applied in order, acks after.

    `write` (rows into PostgreSQL, idempotent) and `table` (where `Effects.state`
    goes) are the processor's resources; `prepare` is an optional async step
    before `plan` for lookups a pure plan cannot do (the merchants heuristics pool),
    whose results the processor keeps for `plan`; `after_state` is told the table
    writes once they are applied; `encode_state` encodes a state write's value for
    the changelog (else the table's codec does).
    """

    def __init__(
        self,
        app: Host,
        processor: Processor[R],
        *,
        write: Writer | None = None,
        table: TableT[Any, Any] | None = None,
        prepare: Callable[[Sequence[Event]], Awaitable[None]] | None = None,
        after_state: Callable[[Sequence[StateWrite]], None] | None = None,
        encode_state: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.app = app
        self.processor = processor
        self.write = write
        self.table = table
        self.prepare = prepare
        # Told which table writes were applied (changelog acknowledged, local store
        # written): the one moment a processor may cache state as the table's.
        self.after_state = after_state
        # The processor's own encoding of its state objects into the table's value codec
        # (e.g. pydantic's JSON): once per write applied, not per plan made.
        self.encode_state = encode_state
        # Called after each applied batch (e.g. to wake a scheduler up).
        self.after_apply: Callable[[], None] | None = None
        # Planning ahead (see `plan_ahead`): the batch whose first plan the future
        # gets, the last batch applied exactly as planned, and the next batch's plan.
        self._plan_slot: tuple[Sequence[Event], asyncio.Future[Effects[R] | None]] | None = None
        self._clean_after: Sequence[Event] | None = None
        self._ahead: PlannedAhead[R] | None = None

    async def run(self, stream: Stream) -> None:
        p, settings = self.processor, self.app.settings
        plans_ahead = isinstance(p, PlansAhead) and self.prepare is None
        await for_each_batch(
            stream,
            p.batch_size,
            p.batch_within,
            self.process,
            p.name,
            retry_initial=settings.retry_initial_backoff,
            retry_max=settings.retry_max_backoff,
            contiguous=getattr(p, "contiguous", True),
            ahead=self.plan_ahead if plans_ahead else None,
        )

    async def process(self, events: Sequence[Event]) -> None:
        """Apply or dead-letter every event of `events`; raise only if even that failed."""
        started = metrics.clock()
        lettered: set[int] = set()
        ahead, self._ahead = self._ahead, None
        effects: Effects[R] | None = None
        if (
            ahead is not None
            and ahead.events is events
            and ahead.after is self._clean_after
            and ahead.generation == self.app.consumer_generation_id
        ):
            effects = ahead.effects
        self._clean_after = None
        clean = await self._settle(list(events), lettered, self._planned_for(events), effects)
        self._clean_after = events if clean else None
        metrics.observe_batch(self.processor, len(events), len(lettered), started)
        # A sample of the batch for the dashboard's live feed (streamapp/activity.py).
        self.app.recent_events.observe(self.processor.pipeline, self.processor.name, events, lettered)
        if self.after_apply is not None:
            self.after_apply()

    async def _settle(
        self,
        events: list[Event],
        lettered: set[int],
        planned: asyncio.Future[Effects[R] | None] | None = None,
        effects: Effects[R] | None = None,
    ) -> bool:
        """Plan (unless `effects` were planned ahead) and apply `events`; narrow them down on an error.

        True if the plan was applied as it was made (no error, nothing narrowed).
        `planned` (the whole batch's) is handed the plan as soon as it is made (None
        if planning raised), for planning the next batch ahead.
        """
        try:
            if effects is None:
                if self.prepare is not None:
                    await self.prepare(events)
                effects = self.processor.plan(events)
        except Exception as exc:  # a pure plan: its errors are never transient
            _hand_over(planned, None)
            await self._narrow(events, lettered, exc)
            return False
        _hand_over(planned, effects)
        try:
            await self.apply(effects, lettered)
        except Exception as exc:  # every transient error was retried inside apply
            await self._narrow(events, lettered, exc)
            return False
        return True

    # --- planning the next batch while this one is applied ------------------------------
    #
    # Most of a batch's time is waiting: for PostgreSQL's transaction, then for the
    # broker's acknowledgements. A processor that `PlansAhead` has the next batch
    # planned in that time, against the states the current batch's plan leaves
    # (the table does not hold them yet). The plan ahead is used only if the
    # current batch was then applied exactly as planned (no error, no narrowing)
    # and no rebalance happened in between; otherwise the batch is planned again,
    # as always. Planning is pure, so a plan ahead that is thrown away changed
    # nothing, and one that is used is the plan the batch would have got anyway.

    def _planned_for(self, events: Sequence[Event]) -> asyncio.Future[Effects[R] | None]:
        """The future of `events`' first plan (a batch is known by its list object)."""
        slot = self._plan_slot
        if slot is None or slot[0] is not events:
            slot = self._plan_slot = (events, asyncio.get_running_loop().create_future())
        return slot[1]

    async def plan_ahead(self, current: Sequence[Event], following: Sequence[Event]) -> None:
        """Plan `following` while `current` is being applied (called by `for_each_batch`)."""
        processor = self.processor
        assert isinstance(processor, PlansAhead)
        generation = self.app.consumer_generation_id
        previous = await self._planned_for(current)
        if previous is None:
            return
        pending = {write.key: write for write in previous.state}
        # In one go. Planned in slices with the event loop let in between (so the current
        # batch's replies were read sooner), it cost ~6 us more CPU per record and was
        # no faster (bench/peers.py, A/B in the closing note of issue 10).
        effects = processor.plan_after(following, pending)
        self._ahead = PlannedAhead(following, effects, generation, current)

    async def _narrow(self, events: list[Event], lettered: set[int], exc: Exception) -> None:
        if len(events) == 1:
            [event] = events
            await self._dead_letter(Invalid(event, describe(exc)), REJECTED, lettered)
            return
        log.warning(
            "%s: a batch of %d from %s failed (%s); narrowing it down",
            self.processor.name,
            len(events),
            _where(events[0]),
            describe(exc),
            extra={"position": _where(events[0])},
        )
        middle = len(events) // 2
        await self._settle(events[:middle], lettered)
        await self._settle(events[middle:], lettered)

    async def apply(self, effects: Effects[R], lettered: set[int]) -> None:
        """Steps 2-5 of the module docstring, each retried while its errors are transient."""
        for refused in effects.invalid:
            await self._dead_letter(refused, INVALID, lettered)
        if effects.rows and self.write is not None:
            await self._write(effects.rows)
        if effects.outputs:
            await self._retry(lambda: publish(self.app, effects.outputs), f"publish {len(effects.outputs)}")
        if effects.state and self.table is not None:
            await self._put_state(self.table, effects.state)

    async def _write(self, rows: Sequence[R]) -> None:
        write = self.write
        assert write is not None

        async def attempt() -> None:
            async with self.app.db.pool.acquire() as conn, conn.transaction():
                await write(conn, rows)

        await self._retry(attempt, f"write {len(rows)} rows")

    async def _put_state(self, table: TableT[Any, Any], writes: Sequence[StateWrite]) -> None:
        from streamapp.runtime.state import changelog_messages, local_value

        encode = self.encode_state
        messages = changelog_messages(table, writes, encode)
        await self._retry(lambda: publish(self.app, messages), f"changelog {len(messages)}")
        # Into the named partition's local store: a RocksDB store would otherwise pick
        # the partition of Faust's current event (streamapp/compat.py, DurableStore).
        for write, message in zip(writes, messages, strict=True):
            store_local(
                table,
                write.partition,
                write.key,
                partial(local_value, table, write, message.value, encode is not None),
                message.key or b"",
                message.value,
            )
        if self.after_state is not None:
            self.after_state(writes)

    async def _retry(self, operation: Callable[[], Awaitable[None]], what: str) -> None:
        settings = self.app.settings
        await retry_transient(
            operation,
            what=f"{self.processor.name}: {what}",
            initial=settings.retry_initial_backoff,
            maximum=settings.retry_max_backoff,
        )

    async def _dead_letter(self, refused: Invalid, reason: str, lettered: set[int]) -> None:
        event = refused.event
        if id(event) in lettered:  # planned again while narrowing: one letter is enough
            return
        where = _where(event)
        log.warning(
            "%s: dead-lettering %s (%s): %s",
            self.processor.name,
            where,
            reason,
            refused.detail,
            extra={"position": where, "event_id": refused.event_id},
        )
        await self.app.dead_letters.send_event(
            event,
            pipeline=self.processor.pipeline,
            reason=reason,
            detail=refused.detail,
            event_id=refused.event_id,
        )
        lettered.add(id(event))


@runtime_checkable
class PlansAhead(Protocol):
    """A processor that can plan a batch against states another plan left, not yet in its table."""

    def plan_after(self, events: Sequence[Event], pending: Mapping[Any, StateWrite]) -> Effects[Any]:
        """`plan(events)` as if the table held `pending` (key -> the state write not applied yet)."""
        ...


@dataclass
class PlannedAhead(Generic[R]):
    """A batch's plan made while the batch before it (`after`) was being applied."""

    events: Sequence[Event]
    effects: Effects[R]
    generation: int
    after: Sequence[Event]


def _hand_over(planned: asyncio.Future[Any] | None, effects: Any) -> None:
    if planned is not None and not planned.done():
        planned.set_result(effects)


def _where(event: Event) -> str:
    message = event.message
    return position(message.topic, message.partition, message.offset)
