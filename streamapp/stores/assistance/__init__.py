"""The assistance pipeline's SQL: the requests the agent records, read back by the status view."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg

from streamapp.models.assistance import AssistanceRequest


async def write_requests(conn: asyncpg.Connection, requests: Sequence[AssistanceRequest]) -> None:
    # Keyed by request id: a redelivered or replayed event adds nothing.
    await conn.executemany(
        """
        INSERT INTO assistance_requests (request_id, topic, topic_as_sent, description, customer,
            conversation_url, language, channels, routing_version, received_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)
        ON CONFLICT (request_id) DO NOTHING
        """,
        [
            (
                r.request_id,
                r.topic,
                r.topic_as_sent,
                r.description,
                json.dumps(r.customer.model_dump()) if r.customer else None,
                r.conversation_url,
                r.language,
                list(r.channels),
                r.routing_version,
                r.received_at,
            )
            for r in requests
        ],
    )


async def assistance_request(conn: asyncpg.Connection, request_id: uuid.UUID) -> asyncpg.Record | None:
    """The request as recorded, or None while it is on its way through the topic (or unknown)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT topic, topic_as_sent, description, customer, conversation_url, language,"
        " channels, routing_version, received_at FROM assistance_requests"
        " WHERE request_id = $1",
        request_id,
    )
    return row
