"""A stand-in for `publish_all` and the dead-letter sender in agent tests: records what was sent."""

from __future__ import annotations

import json
from typing import Any


class Recorder:
    def __init__(self) -> None:
        self.published: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
        self.dead: list[dict[str, Any]] = []

    async def publish(self, topic: Any, messages: list[tuple[bytes, bytes]], **_: Any) -> None:
        self.published.setdefault(topic.get_topic_name(), []).extend(
            (key, json.loads(value)) for key, value in messages
        )

    async def dead_letter(self, event: Any, **kwargs: Any) -> None:
        self.dead.append({"value": event.value, **kwargs})
