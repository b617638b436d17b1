"""PostgreSQL side of the delivery core: endpoints, deliveries, attempts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from streamapp.outbound.models import AttemptResult, DeliveryRequest

# A claimed delivery not finished by then (worker died) is claimed again.
LEASE_SECONDS = 600


@dataclass(frozen=True)
class Claimed:
    delivery_id: uuid.UUID
    endpoint_id: str
    pipeline: str
    payload: dict[str, Any]
    attempts: int
    round_attempts: int
    request: bytes
    url: str | None
    secret: str | None
    disabled: bool


async def upsert_endpoint(conn: asyncpg.Connection, endpoint_id: str, url: str, secret: str) -> None:
    """Register or re-point an endpoint; re-registering re-enables one disabled by a 410."""
    await conn.execute(
        """
        INSERT INTO delivery_endpoints (endpoint_id, url, secret) VALUES ($1, $2, $3)
        ON CONFLICT (endpoint_id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
            disabled_at = NULL, disabled_reason = NULL, updated_at = now()
        """,
        endpoint_id,
        url,
        secret,
    )


async def enqueue(conn: asyncpg.Connection, requests: Sequence[tuple[DeliveryRequest, bytes]]) -> None:
    """Insert deliveries; a repeat is a no-op, except that a replayed dead delivery is revived."""
    await conn.executemany(
        """
        INSERT INTO deliveries
            (delivery_id, pipeline, subject_id, owner, endpoint_id, payload, status, request)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending', $7)
        ON CONFLICT (delivery_id) DO UPDATE SET
            status = 'pending', round_attempts = 0, next_attempt_at = now(), updated_at = now()
        WHERE deliveries.status IN ('dead', 'disabled')
        """,
        [
            (r.delivery_id, r.pipeline, r.subject_id, r.owner, r.endpoint_id, json.dumps(r.payload), raw)
            for r, raw in requests
        ],
    )


async def claim_due(conn: asyncpg.Connection, limit: int) -> list[Claimed]:
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT delivery_id FROM deliveries
            WHERE (status = 'pending' AND next_attempt_at <= now())
               OR (status = 'delivering' AND lease_until < now())
            ORDER BY next_attempt_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE deliveries d SET status = 'delivering',
            lease_until = now() + make_interval(secs => $2), updated_at = now()
        FROM due WHERE d.delivery_id = due.delivery_id
        RETURNING d.delivery_id, d.endpoint_id, d.pipeline, d.payload, d.attempts, d.round_attempts,
            d.request,
            (SELECT url FROM delivery_endpoints e WHERE e.endpoint_id = d.endpoint_id) AS url,
            (SELECT secret FROM delivery_endpoints e WHERE e.endpoint_id = d.endpoint_id) AS secret,
            (SELECT disabled_at IS NOT NULL FROM delivery_endpoints e
              WHERE e.endpoint_id = d.endpoint_id) AS disabled
        """,
        limit,
        float(LEASE_SECONDS),
    )
    return [
        Claimed(
            delivery_id=row["delivery_id"],
            endpoint_id=row["endpoint_id"],
            pipeline=row["pipeline"],
            payload=json.loads(row["payload"]),
            attempts=row["attempts"],
            round_attempts=row["round_attempts"],
            request=bytes(row["request"]),
            url=row["url"],
            secret=row["secret"],
            disabled=bool(row["disabled"]),
        )
        for row in rows
    ]


async def record_attempt(
    conn: asyncpg.Connection,
    claimed: Claimed,
    attempted_at: datetime,
    result: AttemptResult,
    *,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO delivery_attempts
                (delivery_id, attempt, attempted_at, url, status_code, latency_ms, error)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
            """,
            claimed.delivery_id,
            claimed.attempts + 1,
            attempted_at,
            claimed.url or "",
            result.status_code,
            result.latency_ms,
            result.error,
        )
        await conn.execute(
            """
            UPDATE deliveries SET status = $2, attempts = attempts + 1, round_attempts = round_attempts + 1,
                next_attempt_at = coalesce($3, next_attempt_at), lease_until = NULL,
                last_error = $4, updated_at = now()
            WHERE delivery_id = $1
            """,
            claimed.delivery_id,
            status,
            next_attempt_at,
            result.error or (f"HTTP {result.status_code}" if not result.ok else None),
        )


async def set_status(conn: asyncpg.Connection, delivery_id: uuid.UUID, status: str, error: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = $2, last_error = $3, lease_until = NULL, updated_at = now()"
        " WHERE delivery_id = $1",
        delivery_id,
        status,
        error,
    )


async def disable_endpoint(conn: asyncpg.Connection, endpoint_id: str, reason: str) -> None:
    await conn.execute(
        "UPDATE delivery_endpoints SET disabled_at = now(), disabled_reason = $2, updated_at = now()"
        " WHERE endpoint_id = $1 AND disabled_at IS NULL",
        endpoint_id,
        reason,
    )


async def history(conn: asyncpg.Connection, subject_id: str) -> list[dict[str, Any]]:
    """Deliveries about a subject, each with its attempts (oldest first)."""
    rows = await conn.fetch(
        """
        SELECT d.delivery_id, d.owner, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.last_error,
               d.created_at, d.updated_at,
               coalesce(json_agg(json_build_object(
                   'attempt', a.attempt, 'at', a.attempted_at, 'url', a.url, 'status_code', a.status_code,
                   'latency_ms', a.latency_ms, 'error', a.error) ORDER BY a.attempt)
                 FILTER (WHERE a.attempt IS NOT NULL), '[]') AS attempts_json
        FROM deliveries d LEFT JOIN delivery_attempts a USING (delivery_id)
        WHERE d.subject_id = $1
        GROUP BY d.delivery_id ORDER BY d.created_at
        """,
        subject_id,
    )
    return [
        {
            "delivery_id": str(row["delivery_id"]),
            "owner": row["owner"],
            "endpoint_id": row["endpoint_id"],
            "status": row["status"],
            "attempt_count": row["attempts"],
            "next_attempt_at": row["next_attempt_at"].isoformat() if row["status"] == "pending" else None,
            "last_error": row["last_error"],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
            "attempts": json.loads(row["attempts_json"]),
        }
        for row in rows
    ]
