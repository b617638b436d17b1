"""The envelope: round trip, derived ids, effective time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streamapp.envelope import Envelope, derived_id


def test_round_trip_and_effective_time() -> None:
    env = Envelope(event_id=uuid.uuid4(), source="s", key="k", payload={"a": [1, "x"]})
    again = Envelope.decode(env.encode())
    assert again == env
    assert again.effective_at == env.received_at
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert env.model_copy(update={"occurred_at": when}).effective_at == when


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("a", "b") == derived_id("a", "b")
    assert derived_id("a", "b") != derived_id("ab")
    assert derived_id("a", "b").version == 5


def test_derived_ids_are_uuid5_in_the_event_namespace() -> None:
    from streamapp.envelope import EVENT_NAMESPACE

    for parts in [("a",), ("salesforce.json", "key"), ("é", "", "x" * 300), ()]:
        assert derived_id(*parts) == uuid.uuid5(EVENT_NAMESPACE, "\x1f".join(parts))
