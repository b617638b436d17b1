"""The live feed: the last events of each batch, in order, bounded, read from a sequence number."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streamapp.activity import PER_BATCH, RecentEvents


def events(offsets: range, key: bytes | None = b"customer-1") -> list[Any]:
    return [
        SimpleNamespace(message=SimpleNamespace(topic="t", partition=2, offset=o, key=key)) for o in offsets
    ]


def test_each_batch_leaves_its_last_events_marked_applied_or_dead_lettered() -> None:
    feed = RecentEvents()
    batch = events(range(10))
    feed.observe("licenses", "licenses.records", batch, lettered={id(batch[-1])})
    seen = feed.after(0)
    assert [s["position"] for s in seen] == [f"t[2]@{o}" for o in range(10 - PER_BATCH, 10)]
    assert [s["outcome"] for s in seen] == ["applied"] * (PER_BATCH - 1) + ["dead-lettered"]
    assert {(s["pipeline"], s["agent"], s["key"], s["batch"]) for s in seen} == {
        ("licenses", "licenses.records", "customer-1", 10)
    }


def test_readers_get_only_what_came_after_their_last_sequence_number() -> None:
    feed = RecentEvents()
    feed.observe("p", "a", events(range(2)), set())
    first = feed.after(0)
    feed.observe("p", "a", events(range(2, 3)), set())
    fresh = feed.after(first[-1]["seq"])
    assert [s["position"] for s in fresh] == ["t[2]@2"]
    assert feed.after(fresh[-1]["seq"]) == []


def test_the_feed_is_bounded_and_keys_are_shortened_text() -> None:
    feed = RecentEvents(size=5)
    for start in range(0, 30, 3):
        feed.observe("p", "a", events(range(start, start + 3), key=b"\xff" + b"k" * 500), set())
    seen = feed.after(0, limit=100)
    assert [s["position"] for s in seen] == [f"t[2]@{o}" for o in range(25, 30)]
    assert len(seen[0]["key"]) == 80
    assert seen[0]["key"].startswith("\ufffdk")
    feed.observe("p", "a", events(range(1), key=None), set())
    assert feed.after(0)[-1]["key"] is None
