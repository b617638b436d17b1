"""The batch loop every batching agent runs: take events, handle, ack, never let an error escape."""

from __future__ import annotations

import asyncio
import contextlib
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

    Not Faust's `take_events`: in the crash tests it acked (and so committed)
    single events that were in none of the batches it yielded, so they were
    never processed. Here one task reads the stream without acking into a
    bounded queue, this one cuts batches from the queue, and an event is
    acked only after the batch that holds it was handled.

    `handle` dead-letters per event; an exception reaching here is a bug in it.
    It is logged and the agent goes on: a crashed agent would stop the whole
    partition, and Faust would redeliver nothing before a restart anyway.
    """
    manual = concrete(stream).noack()
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=2 * size)

    async def read() -> None:
        async for event in manual.events():
            await queue.put(event)

    reader = asyncio.create_task(read(), name=f"{name}.reader")
    try:
        while True:
            batch = await next_batch(queue, reader, size, within)
            if not batch:
                return  # the stream ended (the worker is stopping)
            try:
                await handle(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: unexpected error handling a batch of %d", name, len(batch))
            for event in batch:
                await manual.ack(event)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def next_batch(
    queue: asyncio.Queue[Event], reader: asyncio.Task[None], size: int, within: float
) -> list[Event]:
    """Wait for one event, then take more until `size` or until `within` s have passed.

    Empty when the stream has ended and every event read was taken.
    """
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()  # cancelled, Queue.get leaves the event in the queue
    if not getter.done() or getter.cancelled():
        reader.result()  # the stream ended: raise what ended it, if anything did
        return []
    batch = [getter.result()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(batch) < size:
        if not queue.empty():
            batch.append(queue.get_nowait())
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return batch
