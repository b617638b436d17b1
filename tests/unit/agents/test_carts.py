"""The cart agents through `test_context()`: re-keying by user, totals, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from faust.types import TableT

from streamapp.app import StreamApp
from streamapp.models.carts import CartView, EntryRow, ItemRow
from streamapp.rules.carts import cart_event
from streamapp.runtime.effects import Output

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, bytes]] = []
        self.dead: list[dict[str, Any]] = []

    async def publish(self, producer: Any, outputs: list[Output], **_: Any) -> None:
        self.published.extend(
            (o.topic, o.key or b"", o.value) for o in outputs if not o.topic.endswith("-changelog")
        )

    async def dead_letter(self, event: Any, **kwargs: Any) -> None:
        self.dead.append({"value": event.value, **kwargs})


@pytest.fixture
def recorder(app: StreamApp, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr("streamapp.runtime.produce.send_batches", rec.publish)
    monkeypatch.setattr(app.dead_letters, "send_event", rec.dead_letter)
    return rec


def event_bytes(cart: uuid.UUID, user: uuid.UUID, version: int, price: str, quantity: int) -> bytes:
    item = ItemRow(uuid.uuid4(), "Mug", "", Decimal(price), NOW, NOW)
    view = CartView(cart, user, version, [EntryRow(item, quantity)], None, NOW, NOW)
    return cart_event("cart.item_added", view).encode()


async def feed(app: StreamApp, agent: str, values: list[tuple[bytes, bytes]]) -> None:
    async with app.agents[agent].test_context() as tested:
        for key, value in values:
            await tested.put(value, key=key, wait=False)
        await asyncio.sleep(0.2)  # one take_events window


async def test_events_are_rekeyed_by_user_unchanged(app: StreamApp, recorder: Recorder) -> None:
    user, cart = uuid.uuid4(), uuid.uuid4()
    raw = event_bytes(cart, user, 1, "2", 1)
    await feed(app, "carts.by-user", [(str(cart).encode(), raw), (str(cart).encode(), b"{not json")])
    assert recorder.published == [("carts.events-by-user", str(user).encode(), raw)]
    assert [d["reason"] for d in recorder.dead] == ["invalid"]


async def test_totals_per_user_ignore_replays(app: StreamApp, recorder: Recorder) -> None:
    user, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key = str(user).encode()
    await feed(
        app,
        "carts.user-totals",
        [
            (key, event_bytes(a, user, 1, "1.10", 1)),
            (key, event_bytes(a, user, 3, "1.10", 3)),
            (key, event_bytes(a, user, 2, "1.10", 2)),  # late: older than version 3
            (key, event_bytes(b, user, 1, "5", 2)),
            (key, b"[]"),
        ],
    )
    # app.tables is typed by the base collection, which does not declare `data`: this one is a Table.
    totals = cast("TableT[Any, Any]", app.tables["cart-totals"]).data[key]
    assert Decimal(totals["price_total"]) == Decimal("13.30")
    assert totals["items"] == 5
    assert {k: v["version"] for k, v in totals["carts"].items()} == {str(a): 3, str(b): 1}
    assert len(recorder.dead) == 1
