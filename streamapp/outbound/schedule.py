"""The retry schedule: when the next attempt is due, with jitter and the receiver's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Standard Webhooks' schedule).
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2
# The longest pause a receiver's Retry-After may ask for, s. Beyond it lie numbers that
# overflow a timedelta (an attempt that raised was never recorded, and the delivery
# was claimed again and again) and pauses no one meant.
MAX_RETRY_AFTER = 86_400.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse Retry-After (delta-seconds or an HTTP date), at most MAX_RETRY_AFTER; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Compared as text first: int() of a 5,000-digit header is a ValueError.
        return MAX_RETRY_AFTER if len(value) > 12 else min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(MAX_RETRY_AFTER, max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))


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
