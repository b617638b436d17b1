"""Items in PostgreSQL. Changes that show in carts lock those carts and write their events."""

from __future__ import annotations

import uuid

import asyncpg

from streamapp.errors import NotFound
from streamapp.models.carts import ItemFields, ItemRow, PageRequest
from streamapp.stores.carts import cart_store
from streamapp.stores.carts.sql import Sql

COLUMNS = "uuid, name, description, price, created, updated"


def item_row(row: asyncpg.Record) -> ItemRow:
    return ItemRow(
        uuid=row["uuid"],
        name=row["name"],
        description=row["description"],
        price=row["price"],
        created=row["created"],
        updated=row["updated"],
    )


def not_found(item_uuid: uuid.UUID) -> NotFound:
    return NotFound(f"item {item_uuid} not found")


async def create(sql: Sql, fields: ItemFields) -> ItemRow:
    row = await sql.fetchrow(
        "INSERT items",
        f"INSERT INTO items (uuid, name, description, price) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}",
        uuid.uuid4(),
        fields.name,
        fields.description,
        fields.price,
    )
    assert row is not None
    return item_row(row)


async def get(sql: Sql, item_uuid: uuid.UUID) -> ItemRow:
    row = await sql.fetchrow("SELECT items", f"SELECT {COLUMNS} FROM items WHERE uuid = $1", item_uuid)
    if row is None:
        raise not_found(item_uuid)
    return item_row(row)


async def page(sql: Sql, request: PageRequest) -> tuple[list[ItemRow], int]:
    """One page and the number of items. The sort column comes from a whitelist, never from the caller."""
    direction = "DESC" if request.order == "desc" else "ASC"
    # The count rides along (one statement, one snapshot); only a page past the
    # end, which has no rows to carry it, needs a second look.
    rows = await sql.fetch(
        "SELECT items page",
        f"SELECT {COLUMNS}, count(*) OVER () AS total FROM items "
        f"ORDER BY {request.column} {direction}, uuid {direction} LIMIT $1 OFFSET $2",
        request.size,
        request.offset,
    )
    if rows:
        total: int = rows[0]["total"]
        return [item_row(row) for row in rows], total
    counted = await sql.fetchrow("SELECT count(items)", "SELECT count(*) AS n FROM items")
    return [], counted["n"] if counted is not None else 0


async def _lock(sql: Sql, item_uuid: uuid.UUID) -> ItemRow:
    # FOR UPDATE (not NO KEY UPDATE) also waits for AddItem calls holding KEY SHARE
    # on the item, so the carts found next include every cart that has it.
    row = await sql.fetchrow(
        "SELECT items FOR UPDATE", f"SELECT {COLUMNS} FROM items WHERE uuid = $1 FOR UPDATE", item_uuid
    )
    if row is None:
        raise not_found(item_uuid)
    return item_row(row)


async def update(sql: Sql, item_uuid: uuid.UUID, fields: ItemFields) -> ItemRow:
    old = await _lock(sql, item_uuid)
    row = await sql.fetchrow(
        "UPDATE items",
        "UPDATE items SET name = $2, description = $3, price = $4, updated = clock_timestamp() "
        f"WHERE uuid = $1 RETURNING {COLUMNS}",
        item_uuid,
        fields.name,
        fields.description,
        fields.price,
    )
    assert row is not None
    new = item_row(row)
    # Carts show names and prices: their snapshots (and totals) changed.
    if (old.name, old.price) != (new.name, new.price):
        await cart_store.touch_carts_with_item(sql, item_uuid, remove=False)
    return new


async def delete(sql: Sql, item_uuid: uuid.UUID) -> None:
    await _lock(sql, item_uuid)
    await cart_store.touch_carts_with_item(sql, item_uuid, remove=True)
    await sql.execute("DELETE items", "DELETE FROM items WHERE uuid = $1", item_uuid)
