"""The merchants pipeline's SQL: clients, the requests they send, and the results the sink records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from streamapp.db.pool import Executor
from streamapp.models.merchants import MerchantResult


async def write_results(conn: asyncpg.Connection, results: Sequence[MerchantResult]) -> None:
    # Only a pending request changes: a redelivered result is a no-op.
    await conn.executemany(
        """
        UPDATE merchant_requests SET status = $2, merchant_name = $3, cache_hit = $4, error = $5,
            finished_at = $6
        WHERE request_id = $1 AND status = 'pending'
        """,
        [(r.request_id, r.status, r.merchant, r.cache_hit, r.error, r.finished_at) for r in results],
    )


async def client(db: Executor, client_id: str) -> asyncpg.Record | None:
    """client_id, api_key_hash and url of a registered client."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT client_id, api_key_hash, url FROM merchant_clients WHERE client_id = $1", client_id
    )
    return row


async def client_exists(db: Executor, client_id: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM merchant_clients WHERE client_id = $1", client_id))


async def lock_client_key_hash(conn: asyncpg.Connection, client_id: str) -> str | None:
    """The client's key hash, its row locked until the transaction ends; None for no such client."""
    row = await conn.fetchrow(
        "SELECT api_key_hash FROM merchant_clients WHERE client_id = $1 FOR UPDATE", client_id
    )
    return None if row is None else str(row["api_key_hash"])


async def set_client_url(conn: asyncpg.Connection, client_id: str, url: str) -> None:
    await conn.execute(
        "UPDATE merchant_clients SET url = $2, updated_at = now() WHERE client_id = $1",
        client_id,
        url,
    )


async def insert_client(conn: asyncpg.Connection, client_id: str, key_hash: str, url: str) -> bool:
    """False when the client exists already (registered concurrently)."""
    inserted = await conn.fetchval(
        "INSERT INTO merchant_clients (client_id, api_key_hash, url) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING client_id",
        client_id,
        key_hash,
        url,
    )
    return inserted is not None


async def insert_request(
    conn: asyncpg.Connection,
    request_id: uuid.UUID,
    client_id: str,
    idempotency_key: str | None,
    transaction: dict[str, Any],
) -> bool:
    """False when a request with this id is recorded already (a repeated Idempotency-Key)."""
    inserted = await conn.fetchval(
        "INSERT INTO merchant_requests (request_id, client_id, idempotency_key, transaction)"
        " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING RETURNING request_id",
        request_id,
        client_id,
        idempotency_key,
        json.dumps(transaction),
    )
    return inserted is not None


async def request_transaction(conn: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record | None:
    """The transaction (JSON text) and status recorded for a request."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT transaction, status FROM merchant_requests WHERE request_id = $1", request_id
    )
    return row


async def request_status(db: Executor, request_id: uuid.UUID, client_id: str) -> asyncpg.Record | None:
    """Status and merchant of the client's request; None for another client's."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT status, merchant_name FROM merchant_requests WHERE request_id = $1 AND client_id = $2",
        request_id,
        client_id,
    )
    return row


async def client_requests(
    db: Executor, client_id: str, status: str | None, received: Any, after_id: Any, limit: int
) -> list[asyncpg.Record]:
    """One keyset page of the client's requests, newest first: before (received, id)."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT request_id, status, merchant_name, error, transaction, created_at, finished_at"
        " FROM merchant_requests WHERE client_id = $1 AND ($2::text IS NULL OR status = $2)"
        " AND ($3::text IS NULL"
        "      OR (created_at, request_id) < ($3::text::timestamptz, $4::text::uuid))"
        " ORDER BY created_at DESC, request_id DESC LIMIT $5",
        client_id,
        status,
        received,
        after_id,
        limit,
    )
    return rows
