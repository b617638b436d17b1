"""Retry transient infrastructure errors with capped exponential backoff and jitter."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from streamapp.errors import is_retriable

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delays(initial: float, maximum: float) -> Any:
    """Yield delays initial, 2x, 4x ... capped at maximum, each with +-20% jitter."""
    delay = initial
    while True:
        yield min(maximum, delay) * random.uniform(0.8, 1.2)
        delay = min(maximum, delay * 2)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    initial: float,
    maximum: float,
    extra: dict[str, Any] | None = None,
    max_attempts: int | None = None,
) -> T:
    """Run `operation` until it succeeds or fails with a non-retriable error.

    Retriable errors (classified by attribute in `errors.is_retriable`) are
    logged and retried forever by default: a sink must never drop a batch
    because PostgreSQL restarted. Cancellation (worker shutdown) ends the loop.
    """
    delays = backoff_delays(initial, maximum)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as exc:
            if not is_retriable(exc) or (max_attempts is not None and attempt >= max_attempts):
                raise
            delay = next(delays)
            log.warning(
                "%s failed (attempt %d), retrying in %.2fs: %r",
                what,
                attempt,
                delay,
                exc,
                extra={**(extra or {}), "attempt": attempt},
            )
            await asyncio.sleep(delay)
