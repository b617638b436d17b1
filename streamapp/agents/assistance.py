"""The assistance agent: each accepted request becomes one delivery per channel, then a row in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from streamapp.errors import describe
from streamapp.models.assistance import PIPELINE, AssistanceRequest
from streamapp.rules.assistance import deliveries_for
from streamapp.runtime.effects import Effects, Invalid, Output
from streamapp.runtime.runner import BatchRuntime
from streamapp.typing import Event, Topic

if TYPE_CHECKING:
    from streamapp.host import Host


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
    """Each request: one delivery per channel (a person is waiting for help), and the record.

    Both effects are idempotent (delivery ids derive from the request id and the
    channel; rows are keyed by request id), so a replayed batch changes nothing.
    """

    name = "assistance.requests"
    pipeline = PIPELINE

    def __init__(self, app: Host, deliveries: Topic) -> None:
        self.deliveries = deliveries.get_topic_name()
        self.batch_size = app.settings.sink_batch_size
        self.batch_within = app.settings.sink_batch_within
        self.runtime: BatchRuntime[AssistanceRequest] = BatchRuntime(app, self, write=write_requests)

    def plan(self, events: Sequence[Event]) -> Effects[AssistanceRequest]:
        effects: Effects[AssistanceRequest] = Effects()
        for event in events:
            try:
                request = AssistanceRequest.model_validate_json(event.value)
                deliveries = deliveries_for(request)
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc)))
                continue
            effects.rows.append(request)
            effects.outputs += [
                Output(self.deliveries, d.endpoint_id.encode(), d.model_dump_json().encode())
                for d in deliveries
            ]
        return effects
