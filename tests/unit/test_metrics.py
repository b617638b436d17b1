"""Metrics: the helpers move the right series, /metrics answers on every process, JSON 404/405."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer
from faust.sensors.prometheus import PrometheusMonitor
from prometheus_client import REGISTRY

from streamapp import metrics
from streamapp.app import StreamApp, create_app
from streamapp.rpc.carts.interceptor import observed
from streamapp.settings import Settings
from tests.unit.runtime.test_runner import Doubler, Journal, items, runtime

SETTINGS = Settings(
    broker_url="kafka://127.0.0.1:1",
    database_url="postgresql://nobody@127.0.0.1:1/none",
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_batch_counts_events_in_out_and_its_size_and_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels = {"pipeline": "test", "agent": "test.doubler"}
    before_in = sample("streamapp_events_in_total", **labels)
    before_out = sample("streamapp_events_out_total", **labels)
    before_batches = sample("streamapp_batch_size_count", **labels)
    before_le_50 = sample("streamapp_batch_size_bucket", le="50.0", **labels)
    before_le_100 = sample("streamapp_batch_size_bucket", le="100.0", **labels)

    # One poisoned and one refused event of 100: both dead-lettered, 98 applied.
    await runtime(Journal(), Doubler(poison={37}, invalid={5}), monkeypatch).process(items(range(100)))

    assert sample("streamapp_events_in_total", **labels) - before_in == 100
    assert sample("streamapp_events_out_total", **labels) - before_out == 98
    assert sample("streamapp_batch_size_count", **labels) - before_batches == 1
    assert sample("streamapp_batch_size_bucket", le="50.0", **labels) == before_le_50
    assert sample("streamapp_batch_size_bucket", le="100.0", **labels) - before_le_100 == 1
    assert sample("streamapp_batch_duration_seconds_count", **labels) >= 1


async def test_a_batch_that_fails_for_good_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal()
    rt = runtime(journal, Doubler(poison=set(), invalid=set()), monkeypatch)

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the dead-letter topic is gone")

    # Every event is poison and dead-lettering fails: the batch is handed over again later.
    rt.processor = Doubler(poison=set(range(4)), invalid=set())
    cast(Any, rt.app).dead_letters = SimpleNamespace(send_event=broken)
    labels = {"pipeline": "test", "agent": "test.doubler"}
    before = sample("streamapp_events_in_total", **labels)
    with pytest.raises(RuntimeError):
        await rt.process(items(range(4)))
    assert sample("streamapp_events_in_total", **labels) == before


def test_dead_letters_and_delivery_attempts_are_counted_by_their_labels() -> None:
    before = sample("streamapp_dead_letters_total", pipeline="licenses", reason="invalid")
    metrics.count_dead_letter("licenses", "invalid")
    metrics.count_dead_letter("licenses", "invalid")
    assert sample("streamapp_dead_letters_total", pipeline="licenses", reason="invalid") - before == 2

    before = sample("streamapp_delivery_attempts_total", channel="unknown", outcome="dead")
    metrics.count_delivery_attempt(None, "dead")
    assert sample("streamapp_delivery_attempts_total", channel="unknown", outcome="dead") - before == 1


def test_consumer_lag_is_replaced_at_each_scrape() -> None:
    metrics.set_consumer_lag(
        [
            {"topic": "licenses.inbound", "partition": 0, "lag": 7},
            {"topic": "licenses.inbound", "partition": 1, "lag": None},  # end offset unknown
        ]
    )
    assert sample("streamapp_consumer_lag", topic="licenses.inbound", partition="0") == 7
    assert (
        REGISTRY.get_sample_value("streamapp_consumer_lag", {"topic": "licenses.inbound", "partition": "1"})
        is None
    )
    # After a rebalance the partition is another worker's: its series goes away.
    metrics.set_consumer_lag([{"topic": "licenses.inbound", "partition": 2, "lag": 0}])
    assert (
        REGISTRY.get_sample_value("streamapp_consumer_lag", {"topic": "licenses.inbound", "partition": "0"})
        is None
    )
    assert (
        REGISTRY.get_sample_value("streamapp_consumer_lag", {"topic": "licenses.inbound", "partition": "2"})
        == 0
    )


class Context:
    """The part of a grpc.aio servicer context the interceptor reads."""

    def __init__(self) -> None:
        self._code: grpc.StatusCode | None = None

    def code(self) -> grpc.StatusCode | None:
        return self._code

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        raise grpc.aio.AbortError()


async def test_grpc_calls_are_counted_by_method_and_status() -> None:
    async def ok(request: Any, context: Any) -> str:
        return "done"

    async def not_found(request: Any, context: Any) -> str:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such cart")
        return "unreachable"

    async def bug(request: Any, context: Any) -> str:
        raise KeyError("oops")

    method = "/cart.Cart/Get"
    before = {
        code: sample("streamapp_grpc_requests_total", method=method, code=code)
        for code in ("OK", "NOT_FOUND", "UNKNOWN")
    }
    assert await observed(method, ok)(None, cast(Any, Context())) == "done"
    with pytest.raises(grpc.aio.AbortError):
        await observed(method, not_found)(None, cast(Any, Context()))
    with pytest.raises(KeyError):
        await observed(method, bug)(None, cast(Any, Context()))
    for code in ("OK", "NOT_FOUND", "UNKNOWN"):
        assert sample("streamapp_grpc_requests_total", method=method, code=code) - before[code] == 1, code
    assert sample("streamapp_grpc_request_duration_seconds_count", method=method) >= 3


@pytest.fixture(params=["worker", "ingest"])
async def web_client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StreamApp, TestClient[Any, Any]]]:
    app = create_app(SETTINGS, role=request.param)
    app.loop = asyncio.get_running_loop()
    web: Any = app.web
    web.init_server()
    async with TestClient(TestServer(web.web_app)) as client:
        yield app, client


async def test_unknown_routes_and_wrong_methods_answer_json(
    web_client: tuple[StreamApp, TestClient[Any, Any]],
) -> None:
    _, client = web_client
    missing = await client.get("/no/such/route")
    assert missing.status == 404
    assert await missing.json() == {"error": "not_found", "detail": "no route for /no/such/route"}

    wrong = await client.delete("/health")
    assert wrong.status == 405
    body = await wrong.json()
    assert body["error"] == "method_not_allowed"
    assert "GET" in body["detail"]
    assert "GET" in wrong.headers["Allow"]


async def test_metrics_are_served_with_requests_counted_by_route_pattern(
    web_client: tuple[StreamApp, TestClient[Any, Any]],
) -> None:
    app, client = web_client
    assert isinstance(app.monitor, PrometheusMonitor)  # Faust's own sensor metrics
    labels = {"route": "/health", "method": "GET", "status": "200"}
    before = sample("streamapp_http_requests_total", **labels)
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    before_unmatched = sample("streamapp_http_requests_total", **unmatched)
    assert (await client.get("/health")).status == 200
    assert (await client.get("/nope/1")).status == 404
    assert (await client.get("/nope/2")).status == 404

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert 'streamapp_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert "faust_messages_received_total" in text
    assert "process_cpu_seconds_total" in text
    assert sample("streamapp_http_requests_total", **labels) - before == 1
    # Every unknown path shares one series.
    assert sample("streamapp_http_requests_total", **unmatched) - before_unmatched == 2
    assert "/nope/1" not in text


def test_the_end_offset_gauge_follows_the_end_set_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.types import TP

    monitor = metrics.monitor_class()(metrics=metrics.faust_metrics())
    assert isinstance(monitor, PrometheusMonitor)
    gauge = metrics.faust_metrics().topic_partition_end_offset
    lookups: list[dict[str, Any]] = []
    labels = gauge.labels

    def counted(**kw: Any) -> Any:
        lookups.append(kw)
        return labels(**kw)

    monkeypatch.setattr(gauge, "labels", counted)
    tp = TP("perf.end-offsets", 0)
    for end in (5, 5, 5, 9, 9):  # Faust reports the high watermark for every record fetched
        monitor.track_tp_end_offset(tp, end)
    assert sample("faust_topic_partition_end_offset", topic="perf.end-offsets", partition="0") == 9
    assert monitor.tp_end_offsets[tp] == 9
    assert len(lookups) == 2
