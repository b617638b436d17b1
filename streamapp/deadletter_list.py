"""The dead letters as the dashboard lists them: the CLI's reader, kept open, read on as letters arrive.

`deadletter_cli.DeadLetterReader` is what `streamapp dead-letters list` reads with
(the same dedupe by letter id); here one stays open while the worker runs and a
refresh (at most every `ttl` seconds) reads only the letters that arrived since.
Only a summary of each letter is kept, and only of the newest `keep`: original
bytes can be up to the producer's limit each, and a replay reads them from the
topic again. Counts by pipeline and reason cover every letter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mode import Service

from streamapp.deadletter_cli import DeadLetterReader, matches, read_dead_letters, replay
from streamapp.deadletters import DeadLetter
from streamapp.settings import Settings

PREVIEW_CHARS = 160


def summary(partition: int, offset: int, letter: DeadLetter) -> dict[str, Any]:
    """What a list shows of a letter: everything but its bytes, and a short text preview of them."""
    body = letter.model_dump(mode="json", exclude={"value_b64", "key_b64"})
    body["position"] = letter.position
    body["key"] = _preview(letter.key_b64)
    body["preview"] = "(kept in PostgreSQL)" if letter.payload_in_postgres else _preview(letter.value_b64)
    body["dlq_partition"], body["dlq_offset"] = partition, offset
    return body


def _preview(b64: str | None) -> str | None:
    if b64 is None:
        return None
    try:
        # Only the start is decoded: a whole letter's bytes can be most of a megabyte.
        raw = base64.b64decode(b64[: (PREVIEW_CHARS * 4 // 3 + 4) // 4 * 4])
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def newest_first(row: dict[str, Any]) -> tuple[datetime, str]:
    """The list's order, newest first (sorted in reverse): failure time, then id, a total order for
    keyset paging. Times compare as times: their text differs in form (`…00Z` and `…00.5Z`)."""
    return datetime.fromisoformat(row["failed_at"]), row["dead_letter_id"]


@dataclass(frozen=True)
class Page:
    total: int
    letters: list[dict[str, Any]]
    # More letters follow the page's last one.
    more: bool


class DeadLetterList(Service):
    """Summaries of the newest letters and counts of all, refreshed at most every `ttl` seconds."""

    def __init__(self, settings: Settings, ttl: float = 3.0, keep: int = 10_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.ttl = ttl
        self.keep = keep
        self._reader = DeadLetterReader(settings)
        self._lock = asyncio.Lock()
        self._read_at = -float("inf")
        self._letters: list[dict[str, Any]] = []  # newest first
        # Read but not merged yet: kept here so that a read cancelled halfway loses nothing
        # (the reader does not hand a letter over twice).
        self._fresh: list[dict[str, Any]] = []
        self.counts: Counter[tuple[str, str]] = Counter()  # (pipeline, reason) of every letter
        # Letters this process replayed, and when (unix time): shown beside them.
        self.replayed: dict[str, float] = {}

    async def on_stop(self) -> None:
        await self._reader.close()

    async def all(self) -> list[dict[str, Any]]:
        """The newest `keep` letters' summaries, newest first."""
        async with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                async for partition, offset, letter in self._reader.read_new():
                    self._fresh.append(summary(partition, offset, letter))
                    self.counts[(letter.pipeline, letter.reason)] += 1
                if self._fresh:
                    merged = self._fresh + self._letters
                    merged.sort(key=newest_first, reverse=True)
                    self._letters, self._fresh = merged[: self.keep], []
                self._read_at = time.monotonic()
            return self._letters

    async def page(
        self,
        pipeline: str | None,
        reason: str | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Page:
        """Up to `limit` letters after `after` (the failure time and id of the previous page's last).

        Keyset, like every list (streamapp/web/paging.py): letters that arrive
        meanwhile go on top and do not shift the pages a reader is paging through.
        """
        start = (after[0], str(after[1])) if after is not None else None
        chosen = [
            row
            for row in await self.all()
            if (not pipeline or row["pipeline"] == pipeline)
            and (not reason or row["reason"] == reason)
            and (start is None or newest_first(row) < start)
        ]
        total = sum(
            n
            for (p, r), n in self.counts.items()
            if (not pipeline or p == pipeline) and (not reason or r == reason)
        )
        rows = [{**row, "replayed_at": self.replayed.get(row["dead_letter_id"])} for row in chosen[:limit]]
        return Page(total=total, letters=rows, more=len(chosen) > limit)

    async def replay(self, dead_letter_id: uuid.UUID) -> DeadLetter | None:
        """Replay one letter exactly as `streamapp dead-letters replay --id` does; None if unknown.

        Only a letter the list knows is looked up in the topic (for its bytes): an
        unknown id costs no read of the whole topic.
        """
        wanted = {str(dead_letter_id)}
        if not any(row["dead_letter_id"] in wanted for row in await self.all()):
            return None
        found: Sequence[DeadLetter] = [
            letter async for _, _, letter in read_dead_letters(self.settings) if matches(letter, ids=wanted)
        ]
        if not found:
            return None
        await replay(self.settings, found[:1])
        self.replayed[str(dead_letter_id)] = time.time()
        return found[0]
