"""Carts in PostgreSQL: every change locks the cart row, bumps its version and writes an outbox row.

Lock order, everywhere: the item first (AddItem: KEY SHARE; item Update/Delete:
UPDATE), then carts in uuid order. One order means no deadlocks between our own
transactions; PostgreSQL's detector (and `sql.transaction`'s retry) covers the rest.
The outbox row is inserted after the cart row is locked, so one cart's outbox ids
are in commit order and the relay publishes them in that order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from streamapp.errors import NotFound
from streamapp.models.carts import (
    AddressFields,
    AddressRow,
    Caller,
    CartView,
    EntryRow,
    FailedPrecondition,
    ItemRow,
)
from streamapp.rules.carts import CartEventType, cart_event
from streamapp.stores.carts.sql import Sql

CART_COLUMNS = "uuid, user_uuid, version, created, updated"
INSERT_OUTBOX = "INSERT INTO cart_outbox (event_id, cart_uuid, payload) VALUES ($1, $2, $3)"


@dataclass(frozen=True)
class Limits:
    max_quantity: int
    max_entries: int


@dataclass(frozen=True)
class CartRow:
    uuid: UUID
    user_uuid: UUID
    version: int
    created: datetime
    updated: datetime


def cart_row(row: asyncpg.Record) -> CartRow:
    return CartRow(row["uuid"], row["user_uuid"], row["version"], row["created"], row["updated"])


def not_found(cart_uuid: UUID) -> NotFound:
    return NotFound(f"cart {cart_uuid} not found")


def check_owner(cart: CartRow, caller: Caller) -> None:
    # NOT_FOUND, as for an unknown cart: PERMISSION_DENIED would tell that it exists.
    if cart.user_uuid != caller.user_uuid:
        raise not_found(cart.uuid)


VIEW = """
SELECT c.uuid, c.user_uuid, c.version, c.created, c.updated,
       a.uuid AS a_uuid, a.line1, a.line2, a.line3, a.city, a.province, a.zip_code, a.country_code,
       a.other, a.created AS a_created, a.updated AS a_updated,
       e.quantity, i.uuid AS i_uuid, i.name, i.description, i.price,
       i.created AS i_created, i.updated AS i_updated
FROM carts c
LEFT JOIN cart_addresses a ON a.cart_uuid = c.uuid
LEFT JOIN cart_entries e ON e.cart_uuid = c.uuid
LEFT JOIN items i ON i.uuid = e.item_uuid
WHERE c.uuid = ANY($1::uuid[])
ORDER BY c.uuid, e.added, e.item_uuid
"""


async def load_views(sql: Sql, cart_uuids: list[UUID]) -> list[CartView]:
    """Carts with their entries (items at their current prices) and addresses.

    One statement, so one snapshot: a Get needs no transaction to be consistent.
    """
    views: dict[UUID, CartView] = {}
    for row in await sql.fetch("SELECT cart view", VIEW, cart_uuids):
        view = views.get(row["uuid"])
        if view is None:
            address = None
            if row["a_uuid"] is not None:
                address = AddressRow(
                    uuid=row["a_uuid"],
                    line1=row["line1"],
                    line2=row["line2"],
                    line3=row["line3"],
                    city=row["city"],
                    province=row["province"],
                    zip_code=row["zip_code"],
                    country_code=row["country_code"],
                    other=row["other"],
                    created=row["a_created"],
                    updated=row["a_updated"],
                )
            view = views[row["uuid"]] = CartView(
                uuid=row["uuid"],
                user_uuid=row["user_uuid"],
                version=row["version"],
                entries=[],
                address=address,
                created=row["created"],
                updated=row["updated"],
            )
        if row["i_uuid"] is not None:
            item = ItemRow(
                row["i_uuid"],
                row["name"],
                row["description"],
                row["price"],
                row["i_created"],
                row["i_updated"],
            )
            view.entries.append(EntryRow(item, row["quantity"]))
    return list(views.values())


async def _view(sql: Sql, cart_uuid: UUID) -> CartView:
    (view,) = await load_views(sql, [cart_uuid])
    return view


async def _publish(sql: Sql, kind: CartEventType, views: list[CartView], item_uuid: UUID | None) -> None:
    events = [cart_event(kind, view, item_uuid) for view in views]
    await sql.executemany(
        "INSERT cart_outbox",
        INSERT_OUTBOX,
        [(event.event_id, event.cart_uuid, event.encode()) for event in events],
    )


async def _lock(sql: Sql, cart_uuid: UUID, caller: Caller) -> CartRow:
    row = await sql.fetchrow(
        "SELECT carts FOR UPDATE", f"SELECT {CART_COLUMNS} FROM carts WHERE uuid = $1 FOR UPDATE", cart_uuid
    )
    if row is None:
        raise not_found(cart_uuid)
    cart = cart_row(row)
    check_owner(cart, caller)
    return cart


async def _bump(sql: Sql, cart_uuid: UUID) -> None:
    # clock_timestamp(), not now(): a transaction that waited for the lock must
    # not stamp an earlier time than the change it waited for.
    await sql.execute(
        "UPDATE carts",
        "UPDATE carts SET version = version + 1, updated = clock_timestamp() WHERE uuid = $1",
        cart_uuid,
    )


async def _changed(sql: Sql, kind: CartEventType, cart_uuid: UUID, item_uuid: UUID | None) -> CartView:
    await _bump(sql, cart_uuid)
    view = await _view(sql, cart_uuid)
    await _publish(sql, kind, [view], item_uuid)
    return view


async def get(sql: Sql, cart_uuid: UUID, caller: Caller) -> CartView:
    views = await load_views(sql, [cart_uuid])
    if not views:
        raise not_found(cart_uuid)
    if views[0].user_uuid != caller.user_uuid:
        raise not_found(cart_uuid)  # as for an unknown cart: it tells nothing
    return views[0]


async def add_item(
    sql: Sql, caller: Caller, cart_uuid: UUID, item_uuid: UUID, quantity: int, limits: Limits
) -> CartView:
    # Locks the item (KEY SHARE: it cannot be deleted meanwhile), then creates the
    # cart for the caller or locks (and bumps) the existing one. One statement, so
    # two first AddItems on a new cart cannot both create it. No row: no such item.
    row = await sql.fetchrow(
        "UPSERT carts",
        """
        WITH item AS (SELECT 1 FROM items WHERE uuid = $3 FOR KEY SHARE)
        INSERT INTO carts AS c (uuid, user_uuid) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM item)
        ON CONFLICT (uuid) DO UPDATE SET version = c.version + 1, updated = clock_timestamp()
        """
        f"RETURNING {CART_COLUMNS}",
        cart_uuid,
        caller.user_uuid,
        item_uuid,
    )
    if row is None:
        raise NotFound(f"item {item_uuid} not found")
    cart = cart_row(row)
    check_owner(cart, caller)
    entry = await sql.fetchrow(
        "UPSERT cart_entries",
        "INSERT INTO cart_entries AS e (cart_uuid, item_uuid, quantity) VALUES ($1, $2, $3) "
        "ON CONFLICT (cart_uuid, item_uuid) DO UPDATE SET quantity = e.quantity + excluded.quantity "
        "RETURNING quantity",
        cart_uuid,
        item_uuid,
        quantity,
    )
    assert entry is not None
    if entry["quantity"] > limits.max_quantity:
        raise FailedPrecondition(
            f"the cart would hold {entry['quantity']} of item {item_uuid}; at most {limits.max_quantity}"
        )
    if entry["quantity"] == quantity:  # a new entry (an existing one already held at least 1)
        counted = await sql.fetchrow(
            "SELECT count(cart_entries)",
            "SELECT count(*) AS n FROM cart_entries WHERE cart_uuid = $1",
            cart_uuid,
        )
        if counted is not None and counted["n"] > limits.max_entries:
            raise FailedPrecondition(f"a cart holds at most {limits.max_entries} different items")
    view = await _view(sql, cart_uuid)
    await _publish(sql, "cart.item_added", [view], item_uuid)
    return view


async def update_quantity(
    sql: Sql, caller: Caller, cart_uuid: UUID, item_uuid: UUID, quantity: int
) -> CartView:
    cart = await _lock(sql, cart_uuid, caller)
    row = await sql.fetchrow(
        "SELECT cart_entries",
        "SELECT quantity FROM cart_entries WHERE cart_uuid = $1 AND item_uuid = $2",
        cart_uuid,
        item_uuid,
    )
    current: int | None = row["quantity"] if row is not None else None
    if current is None and quantity > 0:
        raise FailedPrecondition(f"item {item_uuid} is not in cart {cart_uuid}; AddItem adds it")
    if current is None or current == quantity:
        return await _view(sql, cart.uuid)  # nothing changes, nothing to tell
    if quantity == 0:
        await sql.execute(
            "DELETE cart_entries",
            "DELETE FROM cart_entries WHERE cart_uuid = $1 AND item_uuid = $2",
            cart_uuid,
            item_uuid,
        )
        return await _changed(sql, "cart.item_removed", cart_uuid, item_uuid)
    await sql.execute(
        "UPDATE cart_entries",
        "UPDATE cart_entries SET quantity = $3 WHERE cart_uuid = $1 AND item_uuid = $2",
        cart_uuid,
        item_uuid,
        quantity,
    )
    return await _changed(sql, "cart.quantity_updated", cart_uuid, item_uuid)


async def empty(sql: Sql, caller: Caller, cart_uuid: UUID) -> CartView:
    cart = await _lock(sql, cart_uuid, caller)
    status = await sql.execute(
        "DELETE cart_entries", "DELETE FROM cart_entries WHERE cart_uuid = $1", cart_uuid
    )
    if status == "DELETE 0":
        return await _view(sql, cart.uuid)
    return await _changed(sql, "cart.emptied", cart_uuid, None)


async def configure_address(sql: Sql, caller: Caller, cart_uuid: UUID, address: AddressFields) -> CartView:
    await _lock(sql, cart_uuid, caller)
    await sql.execute(
        "UPSERT cart_addresses",
        """
        INSERT INTO cart_addresses AS a
            (cart_uuid, uuid, line1, line2, line3, city, province, zip_code, country_code, other)
        VALUES ($1, coalesce($2::uuid, $3::uuid), $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (cart_uuid) DO UPDATE SET
            uuid = coalesce($2::uuid, a.uuid),
            line1 = excluded.line1, line2 = excluded.line2, line3 = excluded.line3,
            city = excluded.city, province = excluded.province, zip_code = excluded.zip_code,
            country_code = excluded.country_code, other = excluded.other,
            updated = clock_timestamp()
        """,
        cart_uuid,
        address.uuid,
        uuid.uuid4(),
        address.line1,
        address.line2,
        address.line3,
        address.city,
        address.province,
        address.zip_code,
        address.country_code,
        address.other,
    )
    return await _changed(sql, "cart.address_configured", cart_uuid, None)


async def touch_carts_with_item(sql: Sql, item_uuid: UUID, *, remove: bool) -> int:
    """An item changed (or goes away): lock every cart holding it, bump them, write their events.

    The caller holds the item's row lock (FOR UPDATE), so no cart can gain the item meanwhile.
    """
    rows = await sql.fetch(
        "SELECT carts FOR UPDATE",
        f"""
        SELECT {CART_COLUMNS} FROM carts
        WHERE uuid IN (SELECT cart_uuid FROM cart_entries WHERE item_uuid = $1)
        ORDER BY uuid FOR UPDATE
        """,
        item_uuid,
    )
    if not rows:
        return 0
    if remove:
        await sql.execute("DELETE cart_entries", "DELETE FROM cart_entries WHERE item_uuid = $1", item_uuid)
    bumped = await sql.fetch(
        "UPDATE carts",
        "UPDATE carts SET version = version + 1, updated = clock_timestamp() "
        f"WHERE uuid = ANY($1::uuid[]) RETURNING {CART_COLUMNS}",
        [row["uuid"] for row in rows],
    )
    views = await load_views(sql, [row["uuid"] for row in bumped])
    await _publish(sql, "cart.item_removed" if remove else "cart.item_updated", views, item_uuid)
    return len(views)
