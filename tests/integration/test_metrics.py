"""GET /metrics on a worker: the series move when webhooks come in and the agents process them."""

from __future__ import annotations

import uuid

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from streamapp.kafka_security import bootstrap
from streamapp.rpc.carts.protos import cart_pb2, cart_pb2_grpc
from tests.integration.conftest import ADMIN, CARTS_GRPC_PORT, Client
from tests.integration.stack import Services, customer_record, eventually

WEBHOOK_202 = (
    "streamapp_http_requests_total",
    (("method", "POST"), ("route", "/salesforce/webhook"), ("status", "202")),
)
RECORDS_IN = ("streamapp_events_in_total", (("agent", "licenses.records"), ("pipeline", "licenses")))
RECORDS_OUT = ("streamapp_events_out_total", (("agent", "licenses.records"), ("pipeline", "licenses")))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client) -> Samples:
    status, text = await client.get("/metrics", token=ADMIN)
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_move_when_webhooks_are_processed(client: Client) -> None:
    # Right after the worker's first assignment a POST may answer 503 while tables
    # recover (nothing accepted): let the first one be retried.
    first = customer_record(SKU1=True)
    before = await scrape(client)
    answer = await eventually(lambda: client.post("/salesforce/webhook", first), lambda r: r[0] == 202)
    assert answer[0] == 202, answer
    for _ in range(4):
        status, body, _ = await client.post("/salesforce/webhook", customer_record(SKU3=True))
        assert status == 202, body

    def moved(samples: Samples, key: tuple[str, tuple[tuple[str, str], ...]], by: int) -> bool:
        return samples.get(key, 0.0) - before.get(key, 0.0) >= by

    async def scraped() -> Samples:
        return await scrape(client)

    after = await eventually(scraped, lambda s: moved(s, RECORDS_OUT, 5), timeout=60)
    assert moved(after, RECORDS_OUT, 5)
    assert moved(after, RECORDS_IN, 5)
    assert after[WEBHOOK_202] - before.get(WEBHOOK_202, 0.0) == 5
    assert (
        after[
            (
                "streamapp_http_request_duration_seconds_count",
                (("method", "POST"), ("route", "/salesforce/webhook")),
            )
        ]
        >= 5
    )
    batches = ("streamapp_batch_size_count", RECORDS_IN[1])
    assert after[batches] > before.get(batches, 0.0)
    # Lag per partition of the inbound topic this worker holds, computed at the scrape.
    lag = {labels: v for (name, labels), v in after.items() if name == "streamapp_consumer_lag"}
    assert {dict(labels)["partition"] for labels in lag if dict(labels)["topic"] == "licenses.inbound"} == {
        "0",
        "1",
        "2",
        "3",
    }
    # Faust's own sensor (`faust_` prefix) counted the webhooks too. (Its per-message
    # series stay still for the batch runtime's agents, which bypass the stream iterator.)
    accepted = ("faust_http_status_codes_total", (("status_code", "202"),))
    assert after[accepted] - before.get(accepted, 0.0) >= 5


async def test_unknown_routes_and_wrong_methods_are_json_errors(client: Client) -> None:
    status, body = await client.get("/no/such/route")
    assert (status, body["error"]) == (404, "not_found")
    status, body, headers = await client.post("/health", b"{}")
    assert (status, body["error"]) == (405, "method_not_allowed")
    assert "GET" in headers["Allow"]


async def test_grpc_calls_are_counted_by_method_and_code(client: Client) -> None:
    check = ("streamapp_grpc_requests_total", (("code", "OK"), ("method", "/grpc.health.v1.Health/Check")))
    refused = ("streamapp_grpc_requests_total", (("code", "UNAUTHENTICATED"), ("method", "/cart.Cart/Get")))
    before = await scrape(client)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{CARTS_GRPC_PORT}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        carts = cart_pb2_grpc.CartStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as error:  # no bearer token
            await carts.Get(cart_pb2.CartGetMsg(uuid=str(uuid.uuid4())))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED

    async def scraped() -> Samples:
        return await scrape(client)

    # grpc.aio sends an aborted call's status before the abort unwinds through the
    # interceptor: the count may land just after the caller has its answer.
    after = await eventually(scraped, lambda s: s.get(refused, 0.0) > before.get(refused, 0.0), timeout=10)
    assert after[check] - before.get(check, 0.0) == 1
    assert after[refused] - before.get(refused, 0.0) == 1


async def test_dead_letters_are_counted_by_pipeline_and_reason(client: Client, services: Services) -> None:
    invalid = ("streamapp_dead_letters_total", (("pipeline", "licenses"), ("reason", "invalid")))
    before = await scrape(client)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(services.broker_url))
    await producer.start()
    try:
        # Bytes that never passed the webhook: the records agent refuses them.
        await producer.send_and_wait("licenses.inbound", key=b"junk", value=b"\x00 not an envelope")
    finally:
        await producer.stop()

    async def scraped() -> Samples:
        return await scrape(client)

    def done(s: Samples) -> bool:
        # The letter is counted when durable, the batch when all of it is done.
        return s.get(invalid, 0.0) > before.get(invalid, 0.0) and s.get(RECORDS_IN, 0.0) > before.get(
            RECORDS_IN, 0.0
        )

    after = await eventually(scraped, done)
    assert after.get(invalid, 0.0) - before.get(invalid, 0.0) == 1
    records_in = after[RECORDS_IN] - before.get(RECORDS_IN, 0.0)
    records_out = after[RECORDS_OUT] - before.get(RECORDS_OUT, 0.0)
    assert records_in - records_out == 1  # the junk went in, and not out
