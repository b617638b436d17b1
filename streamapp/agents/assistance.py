"""The assistance agent: each accepted request becomes one delivery per channel, then a row in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from streamapp.batching import for_each_batch
from streamapp.errors import describe
from streamapp.ingest import publish_durably
from streamapp.models.assistance import PIPELINE, AssistanceRequest, deliveries_for
from streamapp.sink import PostgresSink
from streamapp.typing import Event, Stream, Topic

if TYPE_CHECKING:
    from streamapp.app import StreamApp


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


class RequestProcessor:
    """Notifications first (a person is waiting for help), then the record.

    Both steps are idempotent (delivery ids derive from the request id and the
    channel), so a crash between them replays the batch harmlessly.
    """

    def __init__(self, app: StreamApp, deliveries: Topic) -> None:
        self.app = app
        self.deliveries = deliveries
        self.records = PostgresSink(
            app,
            name="assistance.requests",
            pipeline=PIPELINE,
            decode=AssistanceRequest.model_validate_json,
            write=write_requests,
        )

    async def run(self, stream: Stream) -> None:
        settings = self.app.settings
        await for_each_batch(
            stream, settings.sink_batch_size, settings.sink_batch_within, self.handle, "assistance.requests"
        )

    async def handle(self, events: Sequence[Event]) -> None:
        valid: list[Event] = []
        messages: list[tuple[bytes, bytes]] = []
        for event in events:
            try:
                request = AssistanceRequest.model_validate_json(event.value)
                deliveries = deliveries_for(request)
            except Exception as exc:
                await self.app.dead_letters.send_event(
                    event, pipeline=PIPELINE, reason="invalid_request", detail=describe(exc)
                )
                continue
            valid.append(event)
            messages += [(d.endpoint_id.encode(), d.model_dump_json().encode()) for d in deliveries]
        await publish_durably(self.app.settings, self.deliveries, messages)
        if valid:
            await self.records.handle(valid)
