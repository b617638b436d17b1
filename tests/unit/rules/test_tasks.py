"""Report windowing: aligned intervals, what counts in [start, end), open tasks at the end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from streamapp.models.tasks import Transition
from streamapp.rules.tasks import build_report, interval_of, report_document, report_filename

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
