"""Cart agents: re-key cart events by user, then keep each user's cart totals in a table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faust.types import TableT

from streamapp.batching import for_each_batch
from streamapp.errors import describe
from streamapp.ingest import publish_durably
from streamapp.models.cart_events import CartEvent, UserCartTotals, apply_event, dump_totals, load_totals
from streamapp.sink import event_position
from streamapp.tables.state import put_all
from streamapp.typing import Event, Stream, Topic

if TYPE_CHECKING:
    from streamapp.app import StreamApp

log = logging.getLogger(__name__)
PIPELINE = "carts"
BATCH = 500
WITHIN = 0.05


@dataclass
class CartTopics:
    events: Topic  # keyed by cart uuid: what the relay publishes, for everyone
    by_user: Topic  # the same events keyed by user uuid, co-partitioned with the totals table


async def _dead_letter(app: StreamApp, event: Event, exc: Exception) -> None:
    log.warning(
        "carts: cannot process %s: %s",
        event_position(event),
        describe(exc),
        extra={"position": event_position(event)},
    )
    await app.dead_letters.send_event(
        event, pipeline=PIPELINE, reason="invalid_cart_event", detail=describe(exc)
    )


class ByUser:
    """`carts.events` -> `carts.events-by-user`, unchanged bytes, new key; acked only once re-published."""

    def __init__(self, app: StreamApp, topics: CartTopics) -> None:
        self.app = app
        self.topics = topics

    async def run(self, stream: Stream) -> None:
        await for_each_batch(stream, BATCH, WITHIN, self.handle, "carts.by-user")

    async def handle(self, events: Sequence[Event]) -> None:
        out: list[tuple[bytes, bytes]] = []
        for event in events:
            try:
                decoded = CartEvent.decode(event.value)
            except Exception as exc:
                await _dead_letter(self.app, event, exc)
                continue
            out.append((str(decoded.user_uuid).encode(), event.value))
        await publish_durably(self.app.settings, self.topics.by_user, out)


class TotalsKeeper:
    """Applies cart events to the per-user totals. Replays change nothing (per-cart versions)."""

    def __init__(self, app: StreamApp, table: TableT[bytes, Any]) -> None:
        self.app = app
        self.table = table

    async def run(self, stream: Stream) -> None:
        await for_each_batch(stream, BATCH, WITHIN, self.handle, "carts.user-totals")

    async def handle(self, events: Sequence[Event]) -> None:
        pending: dict[bytes, tuple[Event, UserCartTotals]] = {}
        for event in events:
            try:
                decoded = CartEvent.decode(event.value)
                key = str(decoded.user_uuid).encode()
                current = pending[key][1] if key in pending else load_totals(self.table.get(key))
                updated = apply_event(current, decoded)
            except Exception as exc:
                await _dead_letter(self.app, event, exc)
                continue
            if updated is not None:
                pending[key] = (event, updated)
        await put_all(
            self.app.settings,
            self.table,
            [(event, key, dump_totals(totals)) for key, (event, totals) in pending.items()],
        )
