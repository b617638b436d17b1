"""Task events from the TODO app, and the fold that turns a task's events into its state.

A task's state is a pure function of the *set* of its events, folded in event-time
order (timestamp, then event id). Arrival order, redeliveries and replays after a
crash therefore cannot change the outcome: the table stores the set (facts), never
counters, and every derived value (state, rejections, transitions) is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from streamapp.envelope import derived_id

EventType = Literal["created", "updated", "deleted"]
# How many events one task may accumulate; past it, new ones are rejected.
MAX_EVENTS_PER_TASK = 1000


class TaskMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    user_id: StrictStr = Field(alias="userId", min_length=1, max_length=200)
    id: StrictStr = Field(min_length=1, max_length=200)
    content: StrictStr = Field(default="", max_length=10_000)
    is_completed: StrictBool = Field(default=False, alias="isCompleted")


class TaskWebhook(BaseModel):
    """The TODO app's webhook body."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event: EventType
    # Offset required: a naive time cannot be placed on the timeline.
    timestamp: AwareDatetime
    metadata: TaskMetadata

    def event_id(self) -> uuid.UUID:
        """Derived from the content: a redelivered webhook has the same id."""
        canonical = json.dumps(
            [self.event, self.timestamp.isoformat(), self.metadata.model_dump(by_alias=True)], sort_keys=True
        )
        return derived_id("tasks", hashlib.sha256(canonical.encode()).hexdigest())


class TaskFact(BaseModel):
    """One event as the task's table remembers it."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    event: EventType
    ts: datetime
    user_id: str
    content: str
    completed: bool
    received_at: datetime

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.ts, str(self.event_id))


class TaskState(BaseModel):
    """What the fold says a task is now."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    user_id: str | None
    content: str | None
    created_at: datetime | None
    completed_at: datetime | None
    deleted_at: datetime | None
    last_event_at: datetime | None
    last_event_id: uuid.UUID | None

    @property
    def status(self) -> Literal["open", "completed", "deleted", "unknown"]:
        if self.created_at is None:
            return "unknown"
        if self.deleted_at is not None:
            return "deleted"
        return "completed" if self.completed_at is not None else "open"


Kind = Literal["created", "completed", "reopened", "updated", "deleted"]


class Transition(BaseModel):
    """A change in the task's life at an event time (reports are computed from these)."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    at: datetime
    content: str
    event_id: uuid.UUID


class EventOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    event: EventType
    ts: datetime
    status: Literal["applied", "rejected", "pending"]
    reason: str | None = None
    # It arrived after an event with a later timestamp (it was placed in order anyway).
    late: bool = False


@dataclass(frozen=True)
class Fold:
    state: TaskState
    transitions: list[Transition] = field(default_factory=list)
    outcomes: list[EventOutcome] = field(default_factory=list)


def fold(task_id: str, facts: list[TaskFact]) -> Fold:
    """Replay the task's events in event-time order.

    Rules, applied in that order:
    - the earliest `created` creates the task; any other `created` is rejected
      (`duplicate_created`);
    - `updated`/`deleted` before the task exists wait (`pending`, reason
      `unknown_task`): an out-of-order `created` may still arrive and place them;
      ones older than an existing `created` are rejected (`before_created`);
    - nothing applies after `deleted` (`after_deleted`); a second delete is one of these;
    - `updated` sets content and completion: false->true completes, true->false reopens.
    """
    ordered = sorted(facts, key=lambda f: f.order)
    created = next((f for f in ordered if f.event == "created"), None)
    arrival = sorted(facts, key=lambda f: f.received_at)
    latest_seen: datetime | None = None
    late: set[uuid.UUID] = set()
    for fact in arrival:
        if latest_seen is not None and fact.ts < latest_seen:
            late.add(fact.event_id)
        latest_seen = fact.ts if latest_seen is None else max(latest_seen, fact.ts)

    outcomes: list[EventOutcome] = []
    transitions: list[Transition] = []
    user_id = content = None
    created_at = completed_at = deleted_at = last_at = None
    last_id: uuid.UUID | None = None
    completed = False

    def outcome(
        fact: TaskFact, status: Literal["applied", "rejected", "pending"], reason: str | None = None
    ) -> None:
        outcomes.append(
            EventOutcome(
                event_id=fact.event_id,
                event=fact.event,
                ts=fact.ts,
                status=status,
                reason=reason,
                late=fact.event_id in late,
            )
        )

    for fact in ordered:
        if fact.event == "created":
            if fact is not created:
                outcome(fact, "rejected", "duplicate_created")
                continue
            user_id, content, created_at = fact.user_id, fact.content, fact.ts
            completed = fact.completed
            completed_at = fact.ts if completed else None
            transitions.append(
                Transition(kind="created", at=fact.ts, content=fact.content, event_id=fact.event_id)
            )
            if completed:
                transitions.append(
                    Transition(kind="completed", at=fact.ts, content=fact.content, event_id=fact.event_id)
                )
        elif created is None:
            outcome(fact, "pending", "unknown_task")
            continue
        elif fact.order < created.order:
            outcome(fact, "rejected", "before_created")
            continue
        elif deleted_at is not None:
            outcome(fact, "rejected", "after_deleted")
            continue
        elif fact.event == "deleted":
            deleted_at = fact.ts
            transitions.append(
                Transition(kind="deleted", at=fact.ts, content=content or "", event_id=fact.event_id)
            )
        else:
            content = fact.content
            if fact.completed and not completed:
                completed, completed_at = True, fact.ts
                transitions.append(
                    Transition(kind="completed", at=fact.ts, content=content, event_id=fact.event_id)
                )
            elif completed and not fact.completed:
                completed, completed_at = False, None
                transitions.append(
                    Transition(kind="reopened", at=fact.ts, content=content, event_id=fact.event_id)
                )
            else:
                transitions.append(
                    Transition(kind="updated", at=fact.ts, content=content, event_id=fact.event_id)
                )
        outcome(fact, "applied")
        last_at, last_id = fact.ts, fact.event_id

    state = TaskState(
        task_id=task_id,
        user_id=user_id if user_id is not None else (ordered[0].user_id if ordered else None),
        content=content,
        created_at=created_at,
        completed_at=completed_at,
        deleted_at=deleted_at,
        last_event_at=last_at,
        last_event_id=last_id,
    )
    return Fold(state=state, transitions=transitions, outcomes=outcomes)


class TaskSnapshot(BaseModel):
    """What the tasks agent emits after every change: the task's whole derived picture.

    `fact_count` only grows (facts are a set), so the sink keeps the snapshot with
    the most facts and ignores older ones that a replay re-sends.
    """

    model_config = ConfigDict(frozen=True)

    task_id: str
    fact_count: int
    state: TaskState
    transitions: list[Transition]
    outcomes: list[EventOutcome]
    received: dict[str, datetime]

    @classmethod
    def of(cls, task_id: str, facts: list[TaskFact]) -> TaskSnapshot:
        folded = fold(task_id, facts)
        return cls(
            task_id=task_id,
            fact_count=len(facts),
            state=folded.state,
            transitions=folded.transitions,
            outcomes=folded.outcomes,
            received={str(f.event_id): f.received_at for f in facts},
        )


def facts_from_table(raw: Any) -> list[TaskFact]:
    return [TaskFact.model_validate(item) for item in raw] if raw else []


def facts_to_table(facts: list[TaskFact]) -> list[dict[str, Any]]:
    return [f.model_dump(mode="json") for f in facts]
