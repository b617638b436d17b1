"""The licenses pipeline's SQL: the views' reads, Idempotency-Key bindings, and the reads for a
table rebuild (`streamapp rebuild-state licenses`). and the records agent's
set-based upserts of licenses, their history and customers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg

from streamapp.db.arrays import columns
from streamapp.db.pool import Executor
from streamapp.models.licenses import CustomerRecord
from streamapp.pipeline import Rows
from streamapp.rules.licenses import RECENT_EVENTS, CustomerSnapshot, LicenseState, LicenseUpdate
from streamapp.tables.licenses import dump_state

LICENSES_SQL = """
SELECT c.id, c.name, c.account_manager, c.sales_engineer_id, c.signed_tos,
       c.effective_at, c.source_event_id,
       coalesce(json_object_agg(l.sku, l.active) FILTER (WHERE l.sku IS NOT NULL), '{}')::text AS skus,
       max(l.effective_at) AS licenses_at,
       (SELECT array_agg(h.source_event_id ORDER BY h.effective_at, h.recorded_at)
          FROM (SELECT source_event_id, effective_at, recorded_at FROM license_history
                 WHERE customer_id = c.id ORDER BY effective_at DESC, recorded_at DESC LIMIT $1) h
       ) AS recent
FROM customers c LEFT JOIN licenses l ON l.customer_id = c.id
GROUP BY c.id
"""


async def license_states(conn: asyncpg.Connection) -> Rows:
    """Each customer's `LicenseState` as the licenses agent would hold it after what PostgreSQL has."""
    rows: Rows = []
    for row in await conn.fetch(LICENSES_SQL, RECENT_EVENTS):
        skus: dict[str, bool] = json.loads(row["skus"])
        # The event ids PostgreSQL remembers, oldest first, each once: redeliveries of
        # them stay duplicates after the rebuild.
        recent = list(dict.fromkeys(map(str, [*(row["recent"] or []), row["source_event_id"]])))
        effective = max(filter(None, (row["effective_at"], row["licenses_at"])))
        state = LicenseState(
            customer=CustomerRecord(
                id=row["id"],
                name=row["name"],
                account_manager=row["account_manager"],
                sales_engineer_id=row["sales_engineer_id"],
                signed_tos=row["signed_tos"],
                skus=skus,
            ),
            licensed=frozenset(sku for sku, active in skus.items() if active),
            effective_at=effective,
            last_event_id=uuid.UUID(recent[-1]),
            recent_event_ids=tuple(recent[-RECENT_EVENTS:]),
        )
        rows.append((row["id"].encode(), dump_state(state)))
    return rows


async def bind_idempotency_key(db: Executor, key: str, digest: str) -> str:
    """Bind `key` to the record's digest unless bound already; the digest it is bound to."""
    stored: str = await db.fetchval(
        "WITH new AS (INSERT INTO salesforce_idempotency_keys (idempotency_key, record_sha256)"
        " VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING record_sha256)"
        " SELECT record_sha256 FROM new UNION ALL"
        " SELECT record_sha256 FROM salesforce_idempotency_keys WHERE idempotency_key = $1",
        key,
        digest,
    )
    return stored


async def customers(db: Executor, after: str | None, limit: int) -> list[asyncpg.Record]:
    """One keyset page of customers by id, after `after`."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT id, name, account_manager, signed_tos, updated_at FROM customers"
        " WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
    )
    return rows


async def licenses_of(db: Executor, customer_ids: list[str]) -> list[asyncpg.Record]:
    """The licenses of these customers, by customer and SKU."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT customer_id, sku, active, granted_at, revoked_at FROM licenses"
        " WHERE customer_id = ANY($1::text[]) ORDER BY customer_id, sku",
        customer_ids,
    )
    return rows


async def customer_licenses(db: Executor, customer_id: str) -> list[asyncpg.Record]:
    """At least one row: `customer` NULL for an unknown customer, `sku` NULL for one without licenses."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT c.id AS customer, l.sku, l.active, l.granted_at, l.revoked_at
        FROM (SELECT $1::text AS id) q
        LEFT JOIN customers c ON c.id = q.id
        LEFT JOIN licenses l ON l.customer_id = q.id
        ORDER BY l.sku
        """,
        customer_id,
    )
    return rows


async def license_history(db: Executor, customer_id: str, limit: int) -> list[asyncpg.Record]:
    """Grants and revocations, newest first."""
    rows: list[asyncpg.Record] = await db.fetch(
        """
        SELECT update_id, sku, action, effective_at, source_event_id, recorded_at
        FROM license_history WHERE customer_id = $1
        ORDER BY effective_at DESC, recorded_at DESC, sku DESC
        LIMIT $2
        """,
        customer_id,
        limit,
    )
    return rows


async def customer_exists(db: Executor, customer_id: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM customers WHERE id = $1", customer_id))


# Set-based: one statement per batch (per round, see `rounds`), whatever its size.
UPSERT_LICENSES = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::timestamptz[], $5::uuid[], $6::uuid[])
        AS i(customer_id, sku, active, effective_at, update_id, source_event_id)
), changed AS (
    INSERT INTO licenses AS l
        (customer_id, sku, active, granted_at, revoked_at, effective_at, last_update_id)
    SELECT customer_id, sku, active,
           CASE WHEN active THEN effective_at END,
           CASE WHEN NOT active THEN effective_at END,
           effective_at, update_id
    FROM input
    ON CONFLICT (customer_id, sku) DO UPDATE SET
        active = excluded.active,
        granted_at = CASE WHEN excluded.active THEN excluded.effective_at ELSE l.granted_at END,
        revoked_at = CASE WHEN excluded.active THEN NULL ELSE excluded.effective_at END,
        effective_at = excluded.effective_at,
        last_update_id = excluded.last_update_id,
        updated_at = now()
    -- Only a real change, and never one older than what is stored: a replayed or
    -- reordered update changes no row and therefore adds no history line.
    WHERE l.active IS DISTINCT FROM excluded.active AND l.effective_at <= excluded.effective_at
    RETURNING l.last_update_id
)
INSERT INTO license_history (update_id, customer_id, sku, action, effective_at, source_event_id)
SELECT i.update_id, i.customer_id, i.sku, CASE WHEN i.active THEN 'grant' ELSE 'revoke' END,
       i.effective_at, i.source_event_id
FROM input i JOIN changed c ON c.last_update_id = i.update_id
ON CONFLICT (update_id) DO NOTHING
"""

UPSERT_CUSTOMERS = """
INSERT INTO customers AS c
    (id, name, account_manager, sales_engineer_id, signed_tos, effective_at, source_event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                     $7::uuid[])
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name,
    account_manager = excluded.account_manager,
    sales_engineer_id = excluded.sales_engineer_id,
    signed_tos = excluded.signed_tos,
    effective_at = excluded.effective_at,
    source_event_id = excluded.source_event_id,
    updated_at = now()
WHERE c.effective_at <= excluded.effective_at AND c.source_event_id <> excluded.source_event_id
"""

K = TypeVar("K")
V = TypeVar("V")


def rounds(items: Sequence[V], key: Callable[[V], K]) -> list[list[V]]:
    """Split `items` so that no round holds a key twice, keeping each key's order.

    One INSERT ... ON CONFLICT DO UPDATE may not touch a row twice (a batch can
    grant and then revoke the same license), so such rows go to the next round.
    Almost every batch is one round.
    """
    out: list[list[V]] = []
    seen: dict[K, int] = {}
    for item in items:
        index = seen.get(key(item), -1) + 1
        seen[key(item)] = index
        if index == len(out):
            out.append([])
        out[index].append(item)
    return out


async def write_license_updates(conn: asyncpg.Connection, updates: Sequence[LicenseUpdate]) -> None:
    for batch in rounds(updates, lambda u: (u.customer_id, u.sku)):
        rows = [
            (u.customer_id, u.sku, u.action == "grant", u.effective_at, u.update_id, u.source_event_id)
            for u in batch
        ]
        await conn.execute(UPSERT_LICENSES, *columns(rows, 6))


async def write_customers(conn: asyncpg.Connection, snapshots: Sequence[CustomerSnapshot]) -> None:
    for batch in rounds(snapshots, lambda s: s.customer_id):
        rows = [
            (
                s.customer_id,
                s.name,
                s.account_manager,
                s.sales_engineer_id,
                s.signed_tos,
                s.effective_at,
                s.source_event_id,
            )
            for s in batch
        ]
        await conn.execute(UPSERT_CUSTOMERS, *columns(rows, 7))


async def write_license_rows(
    conn: asyncpg.Connection, rows: Sequence[LicenseUpdate | CustomerSnapshot]
) -> None:
    """A records batch: its license changes and its customer snapshots, in one transaction."""
    updates = [row for row in rows if isinstance(row, LicenseUpdate)]
    snapshots = [row for row in rows if isinstance(row, CustomerSnapshot)]
    if updates:
        await write_license_updates(conn, updates)
    if snapshots:
        await write_customers(conn, snapshots)
