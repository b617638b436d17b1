"""Structured logs carry the extra fields (event id, stream position)."""

from __future__ import annotations

import json
import logging

from streamapp.logs import JsonFormatter, TextFormatter, make_handler, position


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("streamapp.x", logging.WARNING, __file__, 1, "failed %s", ("it",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_position() -> None:
    assert position("t", 3, 42) == "t[3]@42"
    assert position("t", None, None) == "t[?]@?"


def test_json_lines_include_extras() -> None:
    line = json.loads(JsonFormatter().format(record(event_id="e1", position="t[0]@1")))
    assert line["msg"] == "failed it"
    assert (line["event_id"], line["position"], line["level"]) == ("e1", "t[0]@1", "WARNING")


def test_text_lines_include_extras() -> None:
    line = TextFormatter().format(record(event_id="e1"))
    assert line.endswith("failed it event_id=e1")
    assert isinstance(make_handler("json").formatter, JsonFormatter)
    assert isinstance(make_handler("text").formatter, TextFormatter)
