"""Task events from the TODO app, the facts the table keeps, and the state folded from them.

The fold itself is a rule (streamapp/rules/tasks.py): the table stores the set of a
task's events (facts), never counters, and every derived value is recomputed from it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
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


def facts_from_table(raw: Any) -> list[TaskFact]:
    return [TaskFact.model_validate(item) for item in raw] if raw else []


def facts_to_table(facts: list[TaskFact]) -> list[dict[str, Any]]:
    return [f.model_dump(mode="json") for f in facts]
