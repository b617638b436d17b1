"""Rows to protobuf: timestamps exactly as protobuf's own conversion, prices as doubles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from streamapp.models.carts import AddressRow, CartView, EntryRow, ItemRow
from streamapp.rpc.carts.convert import cart_msg, timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 22, 20, 4, 5, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_timestamp_matches_protobuf(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value)
    assert timestamp(value) == expected


def test_cart_message() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    item = ItemRow(uuid.uuid4(), "Tea", "green", Decimal("0.1"), now, now)
    address = AddressRow(uuid.uuid4(), "Main 1", "", "", "Berlin", "", "10115", "DE", "", now, now)
    view = CartView(uuid.uuid4(), uuid.uuid4(), 4, [EntryRow(item, 3)], address, now, now)
    msg = cart_msg(view)
    assert msg.price_total == 0.3  # the exact sum, converted once
    assert (msg.entries[0].item.name, msg.entries[0].quantity) == ("Tea", 3)
    assert msg.configuration.address.zipCode == "10115"
    assert str(address.uuid) == msg.configuration.address.UUID
    empty = cart_msg(CartView(view.uuid, view.user_uuid, 1, [], None, now, now))
    assert not empty.configuration.HasField("address")
