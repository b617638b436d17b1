"""The batch loop under the runtime: take events in batches, ack each only once its batch was handled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from streamapp.logs import position
from streamapp.retry import backoff_delays
from streamapp.typing import Event, Stream, concrete

log = logging.getLogger(__name__)


async def for_each_batch(
    stream: Stream,
    size: int,
    within: float,
    handle: Callable[[Sequence[Event]], Awaitable[None]],
    name: str,
    *,
    retry_initial: float = 0.2,
    retry_max: float = 30.0,
) -> None:
    """Feed `handle` batches of up to `size` events, waiting at most `within` s for a partial one.

    Not Faust's `take_events`: in the crash tests it acked (and so committed)
    single events that were in none of the batches it yielded, so they were
    never processed. Here one task reads the stream without acking into a
    bounded queue, this one cuts batches from the queue, and an event is
    acked only after the batch that holds it was handled.

    `handle` (the runtime) applies or dead-letters every event of a batch. If it
    raises all the same, nothing of the batch is acked: the same batch is handed
    to it again after a backoff, for as long as it takes. Acking it would commit
    events that were never applied (they were lost this way before); stopping
    the agent would stall the partition until a restart. The lag shows the stall.
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
            delays = backoff_delays(retry_initial, retry_max)
            while True:
                try:
                    await handle(batch)
                    break
                except Exception:
                    first = batch[0].message
                    where = position(first.topic, first.partition, first.offset)
                    delay = next(delays)
                    log.exception(
                        "%s: a batch of %d from %s was not applied (nothing of it acked), retrying in %.1fs",
                        name,
                        len(batch),
                        where,
                        delay,
                        extra={"position": where},
                    )
                    await asyncio.sleep(delay)
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
