"""Stand-ins for the agents' outputs in agent tests: what was published, written and dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from streamapp.app import StreamApp
from streamapp.runtime.effects import Output
from streamapp.runtime.runner import BatchRuntime


class Recorder:
    """Records what the runtime sends (`runtime.produce.send_batches`), dead-letters and writes to PostgreSQL.

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
        monkeypatch.setattr("streamapp.runtime.produce.send_batches", self.publish)
        monkeypatch.setattr(app.dead_letters, "send_event", self.dead_letter)
        monkeypatch.setattr(app.dead_letters, "send", self.dead_letter_message)
        # Installed on the class, so it is called as a method of every runtime.
        monkeypatch.setattr(BatchRuntime, "_write", self._writer())
        return self

    async def publish(self, producer: Any, outputs: Sequence[Output], **_: Any) -> None:
        for output in outputs:
            if output.topic.endswith("-changelog"):
                continue  # table state: the tests read the table itself
            self.published.setdefault(output.topic, []).append((output.key or b"", json.loads(output.value)))

    async def dead_letter(self, event: Any, **kwargs: Any) -> None:
        self.dead.append({"value": event.value, **kwargs})

    async def dead_letter_message(self, **kwargs: Any) -> None:
        self.dead.append(kwargs)

    def _writer(self) -> Any:
        recorder = self

        async def write(runtime: BatchRuntime[Any], items: Sequence[Any]) -> None:
            if recorder.refuse_when is not None and any(recorder.refuse_when(i) for i in items):
                raise recorder.refuse
            recorder.written.extend(items)

        return write
