"""The outbound delivery core as a pipeline: a topic of delivery requests, the scheduler, history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from streamapp.outbound import store
from streamapp.outbound.models import DELIVERY_TOPIC, DeliveryRequest
from streamapp.outbound.service import DELIVERY_SERVICE, DeliveryService
from streamapp.pipeline import Pipeline
from streamapp.sink import PostgresSink
from streamapp.topics import pipeline_topic
from streamapp.web.deliveries import register_delivery_views

if TYPE_CHECKING:
    from streamapp.host import Host


def decode(raw: bytes) -> tuple[DeliveryRequest, bytes]:
    # Keep the original bytes: a dead-lettered delivery is replayed from them.
    return DeliveryRequest.model_validate_json(raw), raw


def register(app: Host) -> None:
    topic = pipeline_topic(app, DELIVERY_TOPIC)
    service = DeliveryService(app)
    app.provide(DELIVERY_SERVICE, service)
    app.add_worker_service(service)

    async def write(conn: asyncpg.Connection, items: Sequence[tuple[DeliveryRequest, bytes]]) -> None:
        await store.enqueue(conn, items)

    sink = PostgresSink(app, name="deliveries.enqueue", pipeline="deliveries", decode=decode, write=write)
    sink.runtime.after_apply = service.poke

    app.run_agent(topic, "deliveries.enqueue", sink)

    register_delivery_views(app)


pipeline = Pipeline(name="deliveries", register=register, migrations="streamapp.stores.deliveries.migrations")
