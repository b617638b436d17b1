"""The dashboard's dead-letter list: newest first, read on incrementally, counts of every letter."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from streamapp.deadletter_list import DeadLetterList, summary
from streamapp.deadletters import DeadLetter
from streamapp.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def letter(n: int, pipeline: str = "licenses", reason: str = "invalid", value: bytes = b"{}") -> DeadLetter:
    return DeadLetter(
        pipeline=pipeline,
        reason=reason,
        detail=f"letter {n}",
        topic=f"{pipeline}.inbound",
        partition=n % 4,
        offset=n,
        value_b64=base64.b64encode(value).decode(),
        replay_topic=f"{pipeline}.inbound",
        failed_at=T0 + timedelta(seconds=n),
    )


class FakeReader:
    """Stands in for the topic: each read hands over what `arrive` queued since the last."""

    def __init__(self) -> None:
        self.queued: list[DeadLetter] = []
        self.reads = 0

    async def read_new(self) -> AsyncIterator[tuple[int, int, DeadLetter]]:
        self.reads += 1
        queued, self.queued = self.queued, []
        for item in queued:
            yield item.partition or 0, item.offset or 0, item

    async def close(self) -> None:
        pass


def listing(keep: int = 10_000) -> tuple[DeadLetterList, FakeReader]:
    dead = DeadLetterList(Settings(broker_url="kafka://127.0.0.1:1"), ttl=0.0, keep=keep)
    reader = FakeReader()
    dead._reader = reader  # type: ignore[assignment]  # noqa: SLF001 (the topic's stand-in)
    return dead, reader


def after(row: dict[str, object]) -> tuple[datetime, uuid.UUID]:
    """The cursor key a route gives out after `row` (streamapp/web/paging.py)."""
    return datetime.fromisoformat(str(row["failed_at"])), uuid.UUID(str(row["dead_letter_id"]))


async def test_pages_are_newest_first_and_filtered_with_totals_of_every_letter() -> None:
    dead, reader = listing(keep=5)
    reader.queued = [letter(n) for n in range(6)] + [letter(6, "tasks", "rejected")]
    page = await dead.page(None, None, after=None, limit=3)
    assert [row["detail"] for row in page.letters] == ["letter 6", "letter 5", "letter 4"]
    assert page.more
    # Only the newest five are kept; the total still counts all seven.
    assert page.total == 7
    later = await dead.page(None, None, after(page.letters[-1]), limit=3)
    assert [row["detail"] for row in later.letters] == ["letter 3", "letter 2"]
    assert not later.more
    tasks = await dead.page("tasks", None, None, 10)
    assert (tasks.total, [row["detail"] for row in tasks.letters]) == (1, ["letter 6"])
    assert (await dead.page("licenses", "rejected", None, 10)).total == 0

    reader.queued = [letter(7, "tasks", "rejected")]  # arrives later: read on, not from the start
    assert (await dead.page("tasks", "rejected", None, 10)).total == 2
    assert dict(dead.counts) == {("licenses", "invalid"): 6, ("tasks", "rejected"): 2}


async def test_letters_arriving_between_pages_neither_repeat_nor_shift_the_next_page() -> None:
    dead, reader = listing()
    reader.queued = [letter(n) for n in range(5)]
    first = await dead.page(None, None, None, 2)
    reader.queued = [letter(n) for n in range(10, 13)]  # newer letters land on top meanwhile
    second = await dead.page(None, None, after(first.letters[-1]), 2)
    assert [row["detail"] for row in second.letters] == ["letter 2", "letter 1"]


async def test_letters_of_the_same_second_are_ordered_by_time_not_by_their_text() -> None:
    """found: sorted by the text of `failed_at`, `…:00Z` (no fraction) came before `…:00.500000Z`."""
    dead, reader = listing()
    whole, half = letter(1), letter(2)
    reader.queued = [
        whole.model_copy(update={"failed_at": T0}),
        half.model_copy(update={"failed_at": T0 + timedelta(milliseconds=500)}),
    ]
    page = await dead.page(None, None, None, 10)
    assert [row["detail"] for row in page.letters] == ["letter 2", "letter 1"]


async def test_a_replay_of_an_unknown_id_reads_no_topic() -> None:
    dead, reader = listing()
    reader.queued = [letter(1)]
    assert await dead.replay(uuid.uuid4()) is None  # would raise if it tried the (absent) broker


def test_a_summary_has_no_bytes_but_a_short_preview() -> None:
    big = letter(1, value=b'{"Name": "' + b"x" * 5000 + b'"}')
    row = summary(2, 17, big)
    assert "value_b64" not in row
    assert "key_b64" not in row
    assert row["preview"].startswith('{"Name": "xxx')
    assert len(row["preview"]) == 160
    assert (row["dlq_partition"], row["dlq_offset"], row["position"]) == (2, 17, "licenses.inbound[1]@1")
    kept = big.model_copy(update={"payload_in_postgres": True, "value_b64": ""})
    assert summary(0, 0, kept)["preview"] == "(kept in PostgreSQL)"


class SlowReader(FakeReader):
    """Hands over two letters, then stalls (a slow broker) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def read_new(self) -> AsyncIterator[tuple[int, int, DeadLetter]]:
        for n in range(2):
            yield 0, n, letter(n)
        await self.release.wait()
        yield 0, 2, letter(2)


async def test_a_read_cancelled_halfway_loses_no_letter() -> None:
    dead, _ = listing()
    reader = SlowReader()
    dead._reader = reader  # type: ignore[assignment]  # noqa: SLF001
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):  # what the overview does when a source is slow
            await dead.all()
    # The reader will not hand the first two over again; they must still be listed.
    reader.read_new = FakeReader().read_new  # type: ignore[method-assign]
    assert [row["detail"] for row in await dead.all()] == ["letter 1", "letter 0"]
