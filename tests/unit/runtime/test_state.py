"""Changelog records of table writes: encoded as Faust would, on the source event's partition."""

from __future__ import annotations

from typing import Any, cast

from faust.tables.base import Collection
from faust.types import TableT

from streamapp.app import StreamApp
from streamapp.runtime.effects import StateWrite
from streamapp.runtime.state import changelog_messages


def test_raw_keys_are_what_faust_s_prepare_key_makes_of_them(app: StreamApp) -> None:
    # The shortcut for raw bytes keys must agree with Faust's own encoding on the installed Faust.
    for name in app.tables:
        table = cast("TableT[Any, Any]", app.tables[name])
        serializer = cast(Collection, table).key_serializer
        keys = [b"c1", b"", "\u00e9".encode(), bytes(range(256))]
        messages = changelog_messages(table, [StateWrite(key, {"n": 1}, 3) for key in keys])
        expected = [table.changelog_topic.prepare_key(key, serializer)[0] for key in keys]
        assert [m.key for m in messages] == expected, name
        assert {m.partition for m in messages} == {3}
        assert {m.topic for m in messages} == {table.changelog_topic.get_topic_name()}


def test_keys_of_other_types_go_through_faust(app: StreamApp) -> None:
    table = cast("TableT[Any, Any]", app.tables["license-state"])
    [message] = changelog_messages(table, [StateWrite("text key", {"n": 1}, 0)])
    assert message.key == b"text key"
