"""Tracing: the carts server exports a span per rpc and per SQL statement to an OTLP collector.

The server runs in this process (on the embedded PostgreSQL) so the test can own
the collector it exports to; everything between them is the real OTLP/gRPC path.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from streamapp.app import create_app
from streamapp.config.carts import CartsSettings
from streamapp.embedded import free_port
from streamapp.rpc.carts.protos import cart_pb2, cart_pb2_grpc, item_pb2, item_pb2_grpc
from streamapp.rpc.carts.server import CartsServer
from streamapp.stores.carts.outbox import OutboxRelay
from streamapp.topics import pipeline_topic
from tests.integration.stack import Services, Worker, eventually

SECRET = "tracing-test-secret-of-at-least-32-bytes"


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    found = Collector()
    server = grpc.aio.server()
    # The generated gRPC registration function is untyped (protoc writes no hints for it).
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield found, port
    await server.stop(None)


def attributes(span: trace_pb2.Span) -> dict[str, Any]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


# The session worker has applied the migrations this server's statements need.
async def test_rpc_and_sql_spans_reach_the_collector(
    services: Services, worker: Worker, collector: tuple[Collector, int]
) -> None:
    found, collector_port = collector
    settings = CartsSettings(
        broker_url=services.broker_url,
        database_url=services.database_url,
        app_id="carts-tracing-test",
        carts_grpc_port=free_port(),
        carts_jwt_secret=SECRET,
        carts_otlp_endpoint=f"http://127.0.0.1:{collector_port}",
    )
    app = create_app(settings, pipelines=[])
    server = CartsServer(app, OutboxRelay(app, pipeline_topic(app, "carts.events")))
    await server.start()
    admin = jwt.encode(
        {"sub": str(uuid.uuid4()), "roles": ["admin"], "exp": int(time.time()) + 60},
        SECRET,
        algorithm="HS256",
    )
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    metadata = (("authorization", f"Bearer {admin}"), ("traceparent", f"00-{trace_id}-{parent_id}-01"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.carts_grpc_port}") as channel:
            # The generated gRPC stubs are untyped (protoc writes no hints for them).
            item = await item_pb2_grpc.ItemStub(channel).Create(  # type: ignore[no-untyped-call]
                item_pb2.ItemCreateMsg(name="Traced", price=1.0), metadata=metadata
            )
            cart = str(uuid.uuid4())
            await cart_pb2_grpc.CartStub(channel).AddItem(  # type: ignore[no-untyped-call]
                cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item.uuid, quantity=1), metadata=metadata
            )
            with pytest.raises(grpc.aio.AioRpcError):
                await cart_pb2_grpc.CartStub(channel).Get(  # type: ignore[no-untyped-call]
                    cart_pb2.CartGetMsg(uuid=str(uuid.uuid4())), metadata=metadata
                )
    finally:
        await server.stop()  # flushes the exporter
        await app.db.stop()
    spans = await eventually(lambda: asyncio.sleep(0, found.spans), lambda s: len(s) >= 3, timeout=10)
    by_name = {span.name: span for span in spans}
    add = by_name["cart.Cart/AddItem"]
    assert add.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert add.trace_id.hex() == trace_id  # continues the caller's trace
    assert add.parent_span_id.hex() == parent_id
    assert attributes(add)["rpc.service"] == "cart.Cart"
    assert attributes(add)["rpc.grpc.status_code"] == 0
    sql = [span for span in spans if span.parent_span_id == add.span_id]
    assert {"UPSERT carts", "UPSERT cart_entries", "SELECT cart view", "INSERT cart_outbox"} <= {
        span.name for span in sql
    }
    assert all(attributes(span)["db.system"] == "postgresql" for span in sql)
    assert all(span.kind == trace_pb2.Span.SPAN_KIND_CLIENT for span in sql)
    missing = by_name["cart.Cart/Get"]
    assert attributes(missing)["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert missing.status.code == trace_pb2.Status.STATUS_CODE_UNSET  # the caller's error, not ours
