"""The tasks pipeline's rules: the fold from a task's events to its state, and per-user reports.

A task's state is a pure function of the *set* of its events, folded in event-time
order (timestamp, then event id). Arrival order, redeliveries and replays after a
crash therefore cannot change the outcome. Reports cover an event-time interval
[start, end) and are computed from the fold's transitions.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from streamapp.models.tasks import EventOutcome, TaskFact, TaskSnapshot, TaskState, Transition

_STATUS_AFTER = {"created": "open", "completed": "completed", "reopened": "open", "deleted": "deleted"}


class TaskRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    content: str


class ReportContent(BaseModel):
    """The report itself; `digest()` tells whether a recomputation changed anything."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    start: datetime
    end: datetime
    created: list[TaskRef]
    completed: list[TaskRef]
    deleted: list[TaskRef]
    open: list[TaskRef]
    counts: dict[str, int]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def interval_of(ts: datetime, seconds: float) -> tuple[datetime, datetime]:
    """The aligned interval (multiples of `seconds` since the epoch) holding `ts`."""
    epoch = ts.timestamp()
    start = math.floor(epoch / seconds) * seconds
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start, UTC) + timedelta(seconds=seconds)


def build_report(
    user_id: str, start: datetime, end: datetime, tasks: Mapping[str, Iterable[Transition]]
) -> ReportContent:
    """What happened to the user's tasks in [start, end), and which are open at `end`.

    A task is listed with its content as of `end`. Completed-then-reopened inside
    the interval still counts as completed in it: it was.
    """
    created: list[TaskRef] = []
    completed: list[TaskRef] = []
    deleted: list[TaskRef] = []
    still_open: list[TaskRef] = []
    for task_id in sorted(tasks):
        before_end = [t for t in tasks[task_id] if t.at < end]
        if not before_end:
            continue
        ref = TaskRef(id=task_id, content=before_end[-1].content)
        inside = {t.kind for t in before_end if t.at >= start}
        if "created" in inside:
            created.append(ref)
        if "completed" in inside:
            completed.append(ref)
        if "deleted" in inside:
            deleted.append(ref)
        status = "unknown"
        for transition in before_end:
            status = _STATUS_AFTER.get(transition.kind, status)
        if status == "open":
            still_open.append(ref)
    return ReportContent(
        user_id=user_id,
        start=start,
        end=end,
        created=created,
        completed=completed,
        deleted=deleted,
        open=still_open,
        counts={
            "created": len(created),
            "completed": len(completed),
            "deleted": len(deleted),
            "open": len(still_open),
        },
    )


# Past this many characters an encoded user id is cut and a hash of the whole id
# added, so that a name stays under the 255 bytes file systems allow.
MAX_ENCODED_ID = 150


def file_safe_id(user_id: str) -> str:
    """An injective, file-name-safe form of a user id: `user/1` and `user_1` stay apart.

    Percent-encoding of the UTF-8 bytes, keeping letters, digits and `_ . -` (so
    plain ids read as before). `~` never appears in it, so a long id's form
    `<prefix>~<sha256>` cannot be forged by a short id.
    """
    # surrogatepass: a JSON string may hold a lone surrogate; it still gets a name.
    encoded = quote(user_id, safe="", errors="surrogatepass").replace("~", "%7E")
    if len(encoded) <= MAX_ENCODED_ID:
        return encoded
    digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{encoded[:100]}~{digest}"


def report_filename(user_id: str, start: datetime, end: datetime) -> str:
    """`task_report_{user_id}_{start}_{end}.json`, the name existing consumers read."""

    def stamp(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return f"task_report_{file_safe_id(user_id)}_{stamp(start)}_{stamp(end)}.json"


def report_document(content: ReportContent, revision: int, generated_at: datetime) -> bytes:
    body = {**content.model_dump(mode="json"), "revision": revision, "generated_at": generated_at.isoformat()}
    return json.dumps(body, indent=2, sort_keys=True).encode()


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


def task_snapshot(task_id: str, facts: list[TaskFact]) -> TaskSnapshot:
    """The task's whole derived picture after a change, as the tasks agent emits it."""
    folded = fold(task_id, facts)
    return TaskSnapshot(
        task_id=task_id,
        fact_count=len(facts),
        state=folded.state,
        transitions=folded.transitions,
        outcomes=folded.outcomes,
        received={str(f.event_id): f.received_at for f in facts},
    )
