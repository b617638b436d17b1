"""The tasks rules: every arrival order of the same events folds to the same task, rejections
included; report windowing: aligned intervals, what counts in [start, end), open tasks at the end."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streamapp.models.tasks import TaskFact, Transition
from streamapp.rules.tasks import (
    build_report,
    fold,
    interval_of,
    report_document,
    report_filename,
    task_snapshot,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def tr(kind: str, minute: float, content: str = "c") -> Transition:
    return Transition(kind=kind, at=T0 + timedelta(minutes=minute), content=content, event_id=uuid.uuid4())


def test_intervals_are_aligned_and_half_open() -> None:
    assert interval_of(T0, 60) == (T0, T0 + timedelta(minutes=1))
    assert interval_of(T0 + timedelta(seconds=59.999), 60)[0] == T0
    assert interval_of(T0 + timedelta(seconds=60), 60)[0] == T0 + timedelta(minutes=1)
    assert interval_of(T0 + timedelta(minutes=7), 300)[0] == T0 + timedelta(minutes=5)


def test_report_contents() -> None:
    tasks = {
        "a": [tr("created", -5, "old open")],  # created before: open at end, not "created"
        "b": [tr("created", 1, "new"), tr("completed", 2, "new")],
        "c": [tr("created", 1, "gone"), tr("deleted", 3, "gone")],
        "d": [tr("created", 2, "flip"), tr("completed", 3, "flip"), tr("reopened", 4, "flip2")],
        "e": [tr("created", 20, "future")],  # after the interval: absent
        "f": [tr("created", -10, "edge"), tr("completed", 10, "edge")],  # completed exactly at end
    }
    report = build_report("u1", T0, T0 + timedelta(minutes=10), tasks)
    ids = {k: [t.id for t in getattr(report, k)] for k in ("created", "completed", "deleted", "open")}
    assert ids == {
        "created": ["b", "c", "d"],
        "completed": ["b", "d"],
        "deleted": ["c"],
        "open": ["a", "d", "f"],
    }
    assert report.counts == {"created": 3, "completed": 2, "deleted": 1, "open": 3}
    assert next(t for t in report.open if t.id == "d").content == "flip2"


def test_digest_changes_only_with_content() -> None:
    tasks = {"a": [tr("created", 1)]}
    one = build_report("u1", T0, T0 + timedelta(minutes=10), tasks)
    assert one.digest() == build_report("u1", T0, T0 + timedelta(minutes=10), tasks).digest()
    tasks["b"] = [tr("created", 2)]
    assert one.digest() != build_report("u1", T0, T0 + timedelta(minutes=10), tasks).digest()


def test_file_name_and_document() -> None:
    name = report_filename("user/1", T0, T0 + timedelta(minutes=1))
    assert name == "task_report_user%2F1_20260301T120000Z_20260301T120100Z.json"
    assert report_filename("u-1.a_b", T0, T0) == "task_report_u-1.a_b_20260301T120000Z_20260301T120000Z.json"
    doc = report_document(build_report("u", T0, T0 + timedelta(minutes=1), {}), 2, T0)
    assert b'"revision": 2' in doc


def test_report_file_names_collide() -> None:
    """Finding 13: `a/b`, `a_b` and `a:b` were written to one file."""
    ids = ["a/b", "a_b", "a:b", "a%2Fb", "a~b", "a\u00e9", "a\ud800", "x" * 200, "x" * 199 + "y", "é" * 200]
    long_id = "x" * 200
    ids.append(report_filename(long_id, T0, T0).removeprefix("task_report_").split("_2026")[0])
    names = [report_filename(user, T0, T0 + timedelta(minutes=1)) for user in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert len(name.encode()) <= 255
        assert not {"/", "\\", ":"} & set(name)


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
    snap = task_snapshot("t1", facts)
    assert snap.fact_count == 2
    assert set(snap.received) == {str(f.event_id) for f in facts}
