"""The retry schedule: when the next attempt is due, with jitter and the receiver's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Standard Webhooks' schedule).
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date. None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def next_delay(
    schedule: Sequence[float],
    attempts_made: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until attempt number `attempts_made + 1`, or None when the schedule is used up.

    `schedule[i]` is the wait before attempt i+1 (the first is normally 0). The
    receiver's Retry-After is honoured when it asks for longer than we would wait.
    """
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    jittered = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return max(jittered, retry_after or 0.0)
