"""The task fold: every arrival order of the same events gives the same task, rejections included."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from streamapp.models.tasks import TaskFact, TaskSnapshot, TaskWebhook, fold

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def fact(event: str, minute: int, content: str = "c", completed: bool = False, arrival: int = 0) -> TaskFact:
    return TaskFact(
        event_id=uuid.uuid4(),
        event=event,
        ts=T0 + timedelta(minutes=minute),
        user_id="u1",
        content=content,
        completed=completed,
        received_at=T0 + timedelta(hours=1, seconds=arrival),
    )


def arrive(facts: list[TaskFact]) -> list[TaskFact]:
    """The same events, received in the given order."""
    return [
        f.model_copy(update={"received_at": T0 + timedelta(hours=1, seconds=i)}) for i, f in enumerate(facts)
    ]


def essence(facts: list[TaskFact]) -> tuple[object, ...]:
    folded = fold("t1", facts)
    return (
        folded.state,
        folded.transitions,
        sorted((str(o.event_id), o.status, o.reason) for o in folded.outcomes),
    )


PAIRS = [
    ("created", "updated"),
    ("created", "deleted"),
    ("updated", "updated"),
    ("updated", "deleted"),
    ("deleted", "updated"),
    ("created", "created"),
    ("deleted", "deleted"),
    ("updated", "created"),
    ("deleted", "created"),
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_every_out_of_order_pair_is_decided_by_timestamp(first: str, second: str) -> None:
    base = [fact("created", 0, "draft")] if "created" not in (first, second) else []
    a = fact(first, 10, "a", completed=first == "updated")
    b = fact(second, 20, "b")
    in_order = arrive([*base, a, b])
    reversed_ = arrive([*base, b, a])
    assert essence(in_order) == essence(reversed_)
    late = {o.event_id for o in fold("t1", reversed_).outcomes if o.late}
    assert late == {a.event_id}


def test_all_permutations_agree() -> None:
    script = [
        fact("created", 0, "write tests"),
        fact("updated", 5, "write more tests", completed=True),
        fact("updated", 7, "write more tests", completed=False),
        fact("updated", 9, "done", completed=True),
        fact("deleted", 12, "done"),
        fact("updated", 15, "zombie"),
        fact("created", 1, "again"),
    ]
    results = {repr(essence(arrive(list(p)))) for p in itertools.permutations(script)}
    assert len(results) == 1


def test_semantics_of_a_life() -> None:
    created = fact("created", 0, "buy milk")
    done = fact("updated", 5, "buy milk", completed=True)
    reopened = fact("updated", 6, "buy oat milk", completed=False)
    deleted = fact("deleted", 9)
    after = fact("updated", 10, "ghost")
    dup = fact("created", 3, "dup")
    folded = fold("t1", arrive([created, done, reopened, deleted, after, dup]))
    state = folded.state
    assert state.status == "deleted"
    assert (state.created_at, state.completed_at, state.deleted_at) == (created.ts, None, deleted.ts)
    assert state.content == "buy oat milk"
    assert [t.kind for t in folded.transitions] == ["created", "completed", "reopened", "deleted"]
    reasons = {o.event_id: (o.status, o.reason) for o in folded.outcomes}
    assert reasons[after.event_id] == ("rejected", "after_deleted")
    assert reasons[dup.event_id] == ("rejected", "duplicate_created")
    assert reasons[done.event_id] == ("applied", None)


def test_unknown_task_waits_for_its_created() -> None:
    update = fact("updated", 5, "early bird", completed=True)
    alone = fold("t1", arrive([update]))
    assert alone.state.status == "unknown"
    assert [(o.status, o.reason) for o in alone.outcomes] == [("pending", "unknown_task")]
    created = fact("created", 1, "first")
    both = fold("t1", arrive([update, created]))
    assert both.state.status == "completed"
    assert both.state.content == "early bird"
    # An update older than the creation can never apply.
    older = fact("updated", 0, "too early")
    older_created = fact("created", 1)
    outcome = fold("t1", arrive([older, older_created])).outcomes
    assert ("rejected", "before_created") in {(o.status, o.reason) for o in outcome}


def test_created_completed() -> None:
    folded = fold("t1", [fact("created", 0, completed=True)])
    assert folded.state.status == "completed"
    assert [t.kind for t in folded.transitions] == ["created", "completed"]


def test_snapshot_counts_facts() -> None:
    facts = arrive([fact("created", 0), fact("updated", 1)])
    snap = TaskSnapshot.of("t1", facts)
    assert snap.fact_count == 2
    assert set(snap.received) == {str(f.event_id) for f in facts}


def webhook(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event": "created",
        "timestamp": "2026-03-01T12:00:00+01:00",
        "metadata": {"userId": "u1", "id": "t1", "content": "x", "isCompleted": False},
    }
    body.update(overrides)
    return body


def test_webhook_validation_and_stable_ids() -> None:
    hook = TaskWebhook.model_validate(webhook())
    assert hook.timestamp.utcoffset() == timedelta(hours=1)
    assert hook.event_id() == TaskWebhook.model_validate(webhook()).event_id()
    assert hook.event_id() != TaskWebhook.model_validate(webhook(event="updated")).event_id()
    for bad in (
        webhook(event="archived"),
        webhook(timestamp="2026-03-01T12:00:00"),  # no offset
        webhook(timestamp="yesterday"),
        webhook(metadata={"id": "t1"}),
        webhook(metadata={"userId": "u", "id": "t", "isCompleted": "yes"}),
    ):
        with pytest.raises(ValidationError):
            TaskWebhook.model_validate(bad)
