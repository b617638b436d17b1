"""PostgreSQL side of the delivery core: endpoints (channel + settings), deliveries, attempts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from streamapp.outbound.models import AttemptResult, Delivery, DeliveryRequest, Message

# A claimed delivery not finished by then (worker died) is claimed again.
LEASE_SECONDS = 600


@dataclass(frozen=True)
class Claimed:
    delivery_id: uuid.UUID
    endpoint_id: str
    pipeline: str
    subject_id: str
    payload: dict[str, Any]
    message: Message | None
    attempts: int
    round_attempts: int
    request: bytes
    # The endpoint as it is now (None: no such endpoint). Its settings hold secrets: never shown.
    channel: str | None
    config: dict[str, Any] = field(repr=False)
    min_interval: float | None
    disabled: bool
    # A send slot reserved earlier under the endpoint's rate limit.
    has_slot: bool

    @property
    def delivery(self) -> Delivery:
        return Delivery(self.delivery_id, self.pipeline, self.subject_id, self.payload, self.message)


async def upsert_endpoint(conn: asyncpg.Connection, endpoint_id: str, url: str, secret: str) -> None:
    """Register or re-point a signed-webhook endpoint; this re-enables one disabled by a 410."""
    await upsert_channel_endpoint(
        conn, endpoint_id, "webhook", {"url": url, "secret": secret}, None, always_enable=True
    )


async def upsert_channel_endpoint(
    conn: asyncpg.Connection,
    endpoint_id: str,
    channel: str,
    config: dict[str, Any],
    min_interval: float | None,
    *,
    always_enable: bool = False,
) -> bool:
    """Create or update an endpoint; True when its channel or settings changed.

    An endpoint disabled (410) stays disabled when the same settings are written
    again (every reload writes them); new settings re-enable it.
    """
    changed: bool = await conn.fetchval(
        """
        -- `old` reads the statement's snapshot: the row as it was before `up` (no FOR UPDATE,
        -- which would skip a row this very statement updates).
        WITH old AS (SELECT channel, config FROM delivery_endpoints WHERE endpoint_id = $1),
        up AS (
            INSERT INTO delivery_endpoints (endpoint_id, channel, config, min_interval)
            VALUES ($1, $2, $3::jsonb, $4)
            ON CONFLICT (endpoint_id) DO UPDATE SET
                channel = excluded.channel, config = excluded.config, min_interval = excluded.min_interval,
                disabled_at = CASE
                    WHEN $5 OR delivery_endpoints.channel <> excluded.channel
                         OR delivery_endpoints.config <> excluded.config THEN NULL
                    ELSE delivery_endpoints.disabled_at END,
                disabled_reason = CASE
                    WHEN $5 OR delivery_endpoints.channel <> excluded.channel
                         OR delivery_endpoints.config <> excluded.config THEN NULL
                    ELSE delivery_endpoints.disabled_reason END,
                updated_at = now()
            RETURNING 1
        )
        SELECT NOT EXISTS (SELECT 1 FROM old WHERE old.channel = $2 AND old.config = $3::jsonb)
        FROM up
        """,
        endpoint_id,
        channel,
        json.dumps(config),
        min_interval,
        always_enable,
    )
    return changed


async def webhook_secret(conn: asyncpg.Connection, endpoint_id: str) -> str | None:
    secret: str | None = await conn.fetchval(
        "SELECT config->>'secret' FROM delivery_endpoints WHERE endpoint_id = $1 AND channel = 'webhook'",
        endpoint_id,
    )
    return secret


async def enqueue(conn: asyncpg.Connection, requests: Sequence[tuple[DeliveryRequest, bytes]]) -> None:
    """Insert deliveries; a repeat is a no-op, except that a replayed dead delivery is revived."""
    await conn.executemany(
        """
        INSERT INTO deliveries
            (delivery_id, pipeline, subject_id, owner, endpoint_id, payload, message, status, request)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, 'pending', $8)
        ON CONFLICT (delivery_id) DO UPDATE SET
            status = 'pending', round_attempts = 0, next_attempt_at = now(), slot_at = NULL,
            updated_at = now()
        WHERE deliveries.status IN ('dead', 'disabled')
        """,
        [
            (
                r.delivery_id,
                r.pipeline,
                r.subject_id,
                r.owner,
                r.endpoint_id,
                json.dumps(r.payload),
                r.message.model_dump_json() if r.message is not None else None,
                raw,
            )
            for r, raw in requests
        ],
    )


async def claim_due(conn: asyncpg.Connection, limit: int) -> list[Claimed]:
    """Claim due deliveries, skipping endpoints paused by a rate limit or a Retry-After.

    A delivery holding a reserved slot is due at its slot even though its
    endpoint is "paused" by the reservations after it.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT d.delivery_id FROM deliveries d
            WHERE ((d.status = 'pending' AND d.next_attempt_at <= now())
                   OR (d.status = 'delivering' AND d.lease_until < now()))
              AND (d.slot_at IS NOT NULL OR NOT EXISTS (
                    SELECT 1 FROM delivery_endpoints e
                    WHERE e.endpoint_id = d.endpoint_id AND e.next_send_at > now()))
            ORDER BY d.next_attempt_at
            LIMIT $1
            FOR UPDATE OF d SKIP LOCKED
        ),
        claimed AS (
            UPDATE deliveries d SET status = 'delivering',
                lease_until = now() + make_interval(secs => $2), updated_at = now()
            FROM due WHERE d.delivery_id = due.delivery_id
            RETURNING d.*
        )
        SELECT c.delivery_id, c.endpoint_id, c.pipeline, c.subject_id, c.payload, c.message, c.attempts,
               c.round_attempts, c.request, c.slot_at IS NOT NULL AS has_slot,
               e.channel, e.config, e.min_interval, e.disabled_at IS NOT NULL AS disabled
        FROM claimed c LEFT JOIN delivery_endpoints e ON e.endpoint_id = c.endpoint_id
        """,
        limit,
        float(LEASE_SECONDS),
    )
    return [
        Claimed(
            delivery_id=row["delivery_id"],
            endpoint_id=row["endpoint_id"],
            pipeline=row["pipeline"],
            subject_id=row["subject_id"],
            payload=json.loads(row["payload"]),
            message=Message.model_validate_json(row["message"]) if row["message"] is not None else None,
            attempts=row["attempts"],
            round_attempts=row["round_attempts"],
            request=bytes(row["request"]),
            channel=row["channel"],
            config=json.loads(row["config"]) if row["config"] is not None else {},
            min_interval=row["min_interval"],
            disabled=bool(row["disabled"]),
            has_slot=bool(row["has_slot"]),
        )
        for row in rows
    ]


async def reserve_slot(conn: asyncpg.Connection, endpoint_id: str, min_interval: float) -> float:
    """Take the endpoint's next send slot; return how many seconds from now it is.

    In PostgreSQL rather than in memory, so that every worker shares one pace per endpoint.
    """
    wait: float = await conn.fetchval(
        """
        UPDATE delivery_endpoints
        SET next_send_at = greatest(coalesce(next_send_at, now()), now()) + make_interval(secs => $2)
        WHERE endpoint_id = $1
        RETURNING extract(epoch FROM next_send_at - make_interval(secs => $2) - now())::float8
        """,
        endpoint_id,
        min_interval,
    )
    return max(0.0, wait or 0.0)


async def defer(conn: asyncpg.Connection, delivery_id: uuid.UUID, seconds: float) -> None:
    """Put a claimed delivery back until its reserved slot; no attempt is counted."""
    await conn.execute(
        """
        UPDATE deliveries SET status = 'pending', lease_until = NULL,
            next_attempt_at = now() + make_interval(secs => $2),
            slot_at = now() + make_interval(secs => $2), updated_at = now()
        WHERE delivery_id = $1
        """,
        delivery_id,
        seconds,
    )


async def pause_endpoint(conn: asyncpg.Connection, endpoint_id: str, seconds: float) -> None:
    """The receiver asked us to slow down (429 + Retry-After): nothing goes there before then."""
    await conn.execute(
        """
        UPDATE delivery_endpoints
        SET next_send_at = greatest(coalesce(next_send_at, now()), now() + make_interval(secs => $2))
        WHERE endpoint_id = $1
        """,
        endpoint_id,
        seconds,
    )


async def record_attempt(
    conn: asyncpg.Connection,
    claimed: Claimed,
    attempted_at: datetime,
    result: AttemptResult,
    *,
    target: str,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO delivery_attempts
                (delivery_id, attempt, attempted_at, target, status_code, latency_ms, error)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
            """,
            claimed.delivery_id,
            claimed.attempts + 1,
            attempted_at,
            target,
            result.status_code,
            result.latency_ms,
            result.error,
        )
        await conn.execute(
            """
            UPDATE deliveries SET status = $2, attempts = attempts + 1, round_attempts = round_attempts + 1,
                next_attempt_at = coalesce($3, next_attempt_at), lease_until = NULL, slot_at = NULL,
                last_error = $4, updated_at = now()
            WHERE delivery_id = $1
            """,
            claimed.delivery_id,
            status,
            next_attempt_at,
            result.error or (f"status {result.status_code}" if not result.ok else None),
        )


async def set_status(conn: asyncpg.Connection, delivery_id: uuid.UUID, status: str, error: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = $2, last_error = $3, lease_until = NULL, slot_at = NULL,"
        " updated_at = now() WHERE delivery_id = $1",
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
    """Deliveries about a subject, each with its channel type and attempts (oldest first)."""
    rows = await conn.fetch(
        """
        SELECT d.delivery_id, d.pipeline, d.owner, d.endpoint_id, e.channel, d.status, d.attempts,
               d.next_attempt_at,
               d.last_error, d.created_at, d.updated_at,
               coalesce(json_agg(json_build_object(
                   'attempt', a.attempt, 'at', a.attempted_at, 'target', a.target,
                   'status_code', a.status_code, 'latency_ms', a.latency_ms, 'error', a.error)
                   ORDER BY a.attempt)
                 FILTER (WHERE a.attempt IS NOT NULL), '[]') AS attempts_json
        FROM deliveries d
        LEFT JOIN delivery_endpoints e ON e.endpoint_id = d.endpoint_id
        LEFT JOIN delivery_attempts a ON a.delivery_id = d.delivery_id
        WHERE d.subject_id = $1
        GROUP BY d.delivery_id, e.channel ORDER BY d.created_at, d.endpoint_id
        """,
        subject_id,
    )
    return [_delivery(row) for row in rows]


def _delivery(row: asyncpg.Record) -> dict[str, Any]:
    """A delivery row as the API shows it (history by subject and the newest deliveries)."""
    return {
        "delivery_id": str(row["delivery_id"]),
        "pipeline": row["pipeline"],
        "owner": row["owner"],
        "endpoint_id": row["endpoint_id"],
        "channel": row["channel"],
        "status": row["status"],
        "attempt_count": row["attempts"],
        "next_attempt_at": row["next_attempt_at"].isoformat() if row["status"] == "pending" else None,
        "last_error": row["last_error"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "attempts": json.loads(row["attempts_json"]),
    }


async def recent(
    conn: asyncpg.Connection,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    status: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The newest deliveries (all subjects), each with its last attempts; and whether more follow.

    Keyset paging (streamapp/web/paging.py): `after` is the (created_at, delivery_id)
    of the last delivery of the previous page.

    Endpoint settings are never selected: they hold secrets. At most the last
    five attempts of each come along (a dead delivery can have many). No total:
    counting a large table on every dashboard refresh would scan it.
    """
    rows = await conn.fetch(
        """
        SELECT d.delivery_id, d.pipeline, d.subject_id, d.owner, d.endpoint_id, e.channel, d.status,
               d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at,
               coalesce((
                   SELECT json_agg(json_build_object(
                       'attempt', a.attempt, 'at', a.attempted_at, 'target', a.target,
                       'status_code', a.status_code, 'latency_ms', a.latency_ms, 'error', a.error)
                       ORDER BY a.attempt)
                   FROM (SELECT * FROM delivery_attempts x WHERE x.delivery_id = d.delivery_id
                         ORDER BY x.attempt DESC LIMIT 5) a
               ), '[]') AS attempts_json
        FROM deliveries d
        LEFT JOIN delivery_endpoints e ON e.endpoint_id = d.endpoint_id
        WHERE ($1::text IS NULL OR d.status = $1)
          AND ($3::timestamptz IS NULL OR (d.created_at, d.delivery_id) < ($3, $4::uuid))
        ORDER BY d.created_at DESC, d.delivery_id DESC
        LIMIT $2
        """,
        status,
        limit + 1,
        after[0] if after else None,
        after[1] if after else None,
    )
    return [{**_delivery(row), "subject_id": row["subject_id"]} for row in rows[:limit]], len(rows) > limit
