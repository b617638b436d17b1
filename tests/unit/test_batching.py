"""The batch loop: batches by size and by time, acks only after the batch was handled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from streamapp.runtime.batches import for_each_batch


class FakeStream:
    """What `for_each_batch` uses of a Faust stream: `noack()`, `events()`, `ack()`."""

    def __init__(self, feed: asyncio.Queue[Any]) -> None:
        self.feed = feed
        self.acked: list[Any] = []

    def noack(self) -> FakeStream:
        return self

    async def events(self) -> AsyncIterator[Any]:
        while True:
            item = await self.feed.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


class Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = "test", 0, offset


class Item:
    """An event as the loop sees it: something with a `.message` position."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.message = Message(n)


async def run(
    feed: list[Any], *, size: int, within: float, fail_on: Any = None
) -> tuple[Any, list[list[Any]]]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stream = FakeStream(queue)
    batches: list[list[Any]] = []
    acked_before: list[int] = []

    async def handle(events: Sequence[Any]) -> None:
        acked_before.append(len(stream.acked))
        batches.append(list(events))
        if fail_on in events:
            raise RuntimeError("a bug in handle")

    for item in feed:
        queue.put_nowait(item)
    task = asyncio.create_task(for_each_batch(stream, size, within, handle, "test"))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    queue.put_nowait(None)  # the stream ends: so does the loop
    await asyncio.wait_for(task, 5)
    # Nothing of a batch is acked before the batch was handled.
    assert acked_before == [sum(len(b) for b in batches[:i]) for i in range(len(batches))]
    return stream, batches


async def test_batches_are_cut_by_size_and_every_event_is_acked_once() -> None:
    stream, batches = await run(list(range(7)), size=3, within=0.05)
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert stream.acked == list(range(7))


async def test_a_partial_batch_waits_at_most_within() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stream = FakeStream(queue)
    seen: list[tuple[float, list[Any]]] = []
    loop = asyncio.get_running_loop()

    async def handle(events: Sequence[Any]) -> None:
        seen.append((loop.time(), list(events)))

    task = asyncio.create_task(for_each_batch(stream, 100, 0.1, handle, "test"))  # type: ignore[arg-type]
    start = loop.time()
    queue.put_nowait("a")
    await asyncio.sleep(0.03)
    queue.put_nowait("b")
    await asyncio.sleep(0.3)
    assert [events for _, events in seen] == [["a", "b"]]
    assert 0.09 <= seen[0][0] - start < 0.3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_batch_whose_handling_raised_is_not_acked_but_handed_over_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found: an exception from `handle` was logged and the whole batch acked (committed, lost)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stream = FakeStream(queue)
    attempts: list[tuple[list[Any], list[Any]]] = []

    async def handle(events: Sequence[Any]) -> None:
        attempts.append((list(events), list(stream.acked)))
        if len(attempts) < 3:
            raise RuntimeError("the dead-letter topic is unreachable")

    for item in (Item(1), Item(2)):
        queue.put_nowait(item)
    task = asyncio.create_task(
        for_each_batch(stream, 2, 0.05, handle, "test", retry_initial=0.01, retry_max=0.02)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.4)
    queue.put_nowait(None)
    await asyncio.wait_for(task, 5)
    # The same batch three times; nothing acked before the attempt that succeeded.
    assert [[i.n for i in batch] for batch, _ in attempts] == [[1, 2], [1, 2], [1, 2]]
    assert [acked for _, acked in attempts] == [[], [], []]
    assert [i.n for i in stream.acked] == [1, 2]
    assert "was not applied (nothing of it acked)" in caplog.text
    assert "test[0]@1" in caplog.text  # the position of the batch's first event


async def test_a_stream_that_fails_ends_the_loop_with_its_error() -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    queue.put_nowait(ValueError("broken stream"))

    async def handle(events: Sequence[Any]) -> None:
        raise AssertionError("no events")

    with pytest.raises(ValueError, match="broken stream"):
        await asyncio.wait_for(for_each_batch(FakeStream(queue), 10, 0.05, handle, "test"), 5)  # type: ignore[arg-type]
