"""The last events the agents handled, kept in memory for the dashboard's live feed.

A sample, not a log: the runtime hands over each applied batch and only its last
few events are kept, so the cost is per batch, not per event. Nothing here has to
survive a restart (the topics and PostgreSQL hold the truth); a restarted worker
starts with an empty feed.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from streamapp.logs import position
from streamapp.typing import Event

# Events kept per batch: enough to see several keys move, few enough to stay per-batch work.
PER_BATCH = 3
KEY_CHARS = 80


@dataclass(frozen=True)
class Seen:
    seq: int
    at: float  # unix time
    pipeline: str
    agent: str
    position: str
    key: str | None
    outcome: str  # "applied" or "dead-lettered"
    batch: int  # the size of the batch it came in


class RecentEvents:
    """A bounded, ordered feed of `Seen`; readers ask for what came after the last seq they saw."""

    def __init__(self, size: int = 200) -> None:
        self._items: deque[Seen] = deque(maxlen=size)
        self._seq = itertools.count(1)

    def observe(self, pipeline: str, agent: str, events: Sequence[Event], lettered: set[int]) -> None:
        """`lettered`: ids of the events of the batch that were dead-lettered (the runtime's set)."""
        now = time.time()
        for event in events[-PER_BATCH:]:
            message = event.message
            self._items.append(
                Seen(
                    seq=next(self._seq),
                    at=now,
                    pipeline=pipeline,
                    agent=agent,
                    position=position(message.topic, message.partition, message.offset),
                    key=_text(message.key),
                    outcome="dead-lettered" if id(event) in lettered else "applied",
                    batch=len(events),
                )
            )

    def after(self, seq: int, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` entries with a seq above `seq`, oldest first."""
        fresh = [item for item in self._items if item.seq > seq]
        return [asdict(item) for item in fresh[-limit:]]


def _text(key: object) -> str | None:
    if key is None:
        return None
    raw = key if isinstance(key, bytes) else str(key).encode()
    text = raw[: KEY_CHARS * 4].decode("utf-8", errors="replace")
    return text if len(text) <= KEY_CHARS else text[: KEY_CHARS - 1] + "…"
