"""TODO-app task events: several users, and the sender's habits (out of order, duplicates)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

WORDS = ("buy", "milk", "call", "mum", "fix", "bug", "write", "report", "book", "flight", "pay", "rent")


@dataclass
class Task:
    id: str
    user_id: str
    content: str
    completed: bool = False
    deleted: bool = False


@dataclass
class TaskScript:
    """A plausible history: tasks are created, edited, completed, reopened and deleted."""

    users: int
    seed: int | None = None
    start: datetime | None = None
    rng: random.Random = field(init=False)
    tasks: list[Task] = field(default_factory=list)
    clock: datetime = field(init=False)
    counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.clock = self.start or datetime.now().astimezone()
        self.prefix = f"{self.rng.getrandbits(32):08x}"

    def _content(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(3))

    def next_event(self, step: timedelta = timedelta(milliseconds=50)) -> dict[str, Any]:
        self.clock += step
        live = [t for t in self.tasks if not t.deleted]
        roll = self.rng.random()
        if not live or roll < 0.35:
            self.counter += 1
            task = Task(
                id=f"task-{self.prefix}-{self.counter}",
                user_id=f"user-{self.prefix}-{self.rng.randrange(self.users)}",
                content=self._content(),
            )
            self.tasks.append(task)
            return self._event("created", task)
        task = self.rng.choice(live)
        if roll < 0.85:
            if self.rng.random() < 0.5:
                task.completed = not task.completed
            else:
                task.content = self._content()
            return self._event("updated", task)
        task.deleted = True
        return self._event("deleted", task)

    def _event(self, kind: str, task: Task) -> dict[str, Any]:
        return {
            "event": kind,
            "timestamp": self.clock.isoformat(),
            "metadata": {
                "userId": task.user_id,
                "id": task.id,
                "content": task.content,
                "isCompleted": task.completed,
            },
        }


def deliveries(
    events: list[dict[str, Any]], rng: random.Random, shuffle: int = 5, duplicates: float = 0.1
) -> list[dict[str, Any]]:
    """How an at-least-once, unordered sender delivers them: local shuffles and repeats."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(events), shuffle):
        window = events[i : i + shuffle]
        rng.shuffle(window)
        for event in window:
            out.append(event)
            if rng.random() < duplicates:
                out.append(event)
    return out
