"""The batch loop every batching agent runs: take events, handle, never let an error escape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from streamapp.typing import Event, Stream, concrete

log = logging.getLogger(__name__)


async def for_each_batch(
    stream: Stream,
    size: int,
    within: float,
    handle: Callable[[Sequence[Event]], Awaitable[None]],
    name: str,
) -> None:
    """Feed `handle` batches of up to `size` events, waiting at most `within` s for a partial one.

    `handle` dead-letters per event; an exception reaching here is a bug in it.
    It is logged and the agent goes on: Faust would ack the batch anyway, and a
    crashed agent would stop the whole partition.
    """
    async for events in concrete(stream).take_events(size, within):
        try:
            await handle(events)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: unexpected error handling a batch of %d", name, len(events))
