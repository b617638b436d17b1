"""Cart events (the `carts.events` topic) and the per-user totals folded from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from streamapp.envelope import utcnow
from streamapp.models.carts import CartView

CartEventType = Literal[
    "cart.item_added",
    "cart.quantity_updated",
    "cart.item_removed",
    "cart.emptied",
    "cart.address_configured",
    "cart.item_updated",
]


class EntrySnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    item_uuid: UUID
    name: str
    price: Decimal
    quantity: int


class AddressSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    uuid: UUID
    line1: str
    line2: str
    line3: str
    city: str
    province: str
    zip_code: str
    country_code: str
    other: str


class CartSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    uuid: UUID
    user_uuid: UUID
    version: int
    entries: list[EntrySnapshot]
    address: AddressSnapshot | None
    price_total: Decimal
    items: int
    created: datetime
    updated: datetime


class CartEvent(BaseModel):
    """One cart change, with the whole cart after it: consumers need no other source.

    `version` grows by one with every change of a cart; with at-least-once
    delivery a consumer keeps the highest version it has seen and ignores the rest.
    """

    model_config = ConfigDict(frozen=True)

    event_id: UUID = Field(default_factory=uuid.uuid4)
    type: CartEventType
    cart_uuid: UUID
    user_uuid: UUID
    version: int
    item_uuid: UUID | None = None
    occurred_at: datetime = Field(default_factory=utcnow)
    cart: CartSnapshot

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> CartEvent:
        return cls.model_validate_json(raw)


def snapshot(view: CartView) -> CartSnapshot:
    address = view.address
    return CartSnapshot(
        uuid=view.uuid,
        user_uuid=view.user_uuid,
        version=view.version,
        entries=[
            EntrySnapshot(item_uuid=e.item.uuid, name=e.item.name, price=e.item.price, quantity=e.quantity)
            for e in view.entries
        ],
        address=AddressSnapshot(
            uuid=address.uuid,
            line1=address.line1,
            line2=address.line2,
            line3=address.line3,
            city=address.city,
            province=address.province,
            zip_code=address.zip_code,
            country_code=address.country_code,
            other=address.other,
        )
        if address is not None
        else None,
        price_total=view.price_total,
        items=view.item_count,
        created=view.created,
        updated=view.updated,
    )


def cart_event(kind: CartEventType, view: CartView, item_uuid: UUID | None = None) -> CartEvent:
    return CartEvent(
        type=kind,
        cart_uuid=view.uuid,
        user_uuid=view.user_uuid,
        version=view.version,
        item_uuid=item_uuid,
        occurred_at=view.updated,
        cart=snapshot(view),
    )


# --- per-user totals (the `cart-totals` table) ------------------------------------------


class CartTotal(BaseModel):
    version: int
    price_total: Decimal
    items: int


class UserCartTotals(BaseModel):
    """A user's carts as the stream last saw them, and their sums."""

    user_uuid: UUID
    carts: dict[str, CartTotal] = Field(default_factory=dict)
    price_total: Decimal = Decimal(0)
    items: int = 0
    last_event_id: UUID | None = None


def apply_event(current: UserCartTotals | None, event: CartEvent) -> UserCartTotals | None:
    """The totals after `event`, or None when it changes nothing (a replay or an older version)."""
    state = current or UserCartTotals(user_uuid=event.user_uuid)
    key = str(event.cart_uuid)
    known = state.carts.get(key)
    if known is not None and known.version >= event.version:
        return None
    carts = {
        **state.carts,
        key: CartTotal(version=event.version, price_total=event.cart.price_total, items=event.cart.items),
    }
    return UserCartTotals(
        user_uuid=state.user_uuid,
        carts=carts,
        price_total=sum((c.price_total for c in carts.values()), Decimal(0)),
        items=sum(c.items for c in carts.values()),
        last_event_id=event.event_id,
    )


def load_totals(raw: Any) -> UserCartTotals | None:
    return UserCartTotals.model_validate(raw) if raw is not None else None


def dump_totals(totals: UserCartTotals) -> dict[str, Any]:
    return totals.model_dump(mode="json")
