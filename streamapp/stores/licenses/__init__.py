"""The licenses pipeline's SQL: the views' reads, Idempotency-Key bindings, and the reads for a
table rebuild (`streamapp rebuild-state licenses`). The sink's upserts stay in agents/licenses.py
for now (the batch runtime's benchmark work is on that module)."""

from __future__ import annotations

import json

import asyncpg

from streamapp.db.pool import Executor
from streamapp.models.licenses import CustomerRecord
from streamapp.pipeline import Rows
from streamapp.rules.licenses import RECENT_EVENTS, LicenseState
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
        recent = list(dict.fromkeys([*(row["recent"] or []), row["source_event_id"]]))
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
            last_event_id=recent[-1],
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
