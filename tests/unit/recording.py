"""Stand-ins for the agents' outputs in agent tests: what was published, written and dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from streamapp.app import StreamApp
from streamapp.sink import PostgresWriter


class Recorder:
    """Records what agents send through `publish_all`, the dead-letter sender and PostgreSQL writers.

    A writer refuses (raises `refuse`) any batch holding an item for which
    `refuse_when(item)` is true, as PostgreSQL refuses a whole transaction.
    """

    def __init__(self) -> None:
        self.published: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
        self.dead: list[dict[str, Any]] = []
        self.written: list[Any] = []
        self.refuse_when: Any = None
        self.refuse: Exception = Exception("refused")

    def install(self, app: StreamApp, monkeypatch: pytest.MonkeyPatch) -> Recorder:
        monkeypatch.setattr("streamapp.ingest.publish_all", self.publish)
        monkeypatch.setattr(app.dead_letters, "send_event", self.dead_letter)
        monkeypatch.setattr(app.dead_letters, "send", self.dead_letter_message)
        # Installed on the class, so it is called as a method of every writer and sink.
        monkeypatch.setattr(PostgresWriter, "_write", self._writer())
        return self

    async def publish(self, topic: Any, messages: list[tuple[bytes, bytes]], **_: Any) -> None:
        self.published.setdefault(topic.get_topic_name(), []).extend(
            (key, json.loads(value)) for key, value in messages
        )

    async def dead_letter(self, event: Any, **kwargs: Any) -> None:
        self.dead.append({"value": event.value, **kwargs})

    async def dead_letter_message(self, **kwargs: Any) -> None:
        self.dead.append(kwargs)

    def _writer(self) -> Any:
        recorder = self

        async def write(writer: PostgresWriter[Any], items: Sequence[Any]) -> None:
            if recorder.refuse_when is not None and any(recorder.refuse_when(i) for i in items):
                raise recorder.refuse
            recorder.written.extend(items)

        return write
