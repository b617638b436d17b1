"""Micro-benchmark of what the Prometheus metrics cost per event on the licenses path.

    python -m bench.metrics_cost [--batches 40] [--batch-size 500] [--requests 3000] [--rounds 10]

Two places pay for metrics per licenses record, each measured with and without,
the variants alternating within every round (a shared machine slows them alike);
the result is CPU microseconds of this process per event (`time.process_time`):

  records agent   `BatchRuntime.process` with the real licenses `RecordProcessor.plan`
                  (decode, validate, decide, rows, outputs) on batches of records;
                  PostgreSQL, the producer and the table are no-ops, so the share
                  shown is an upper bound (the real path adds the database, the
                  broker's acks and Faust's fetch, ~410-500 us per record in all).
                  With metrics: `metrics.observe_batch` once per batch.
  webhook request POST /salesforce/webhook (a JSON record) on an ingest app's own web
                  server from an in-process aiohttp client (its CPU is counted too,
                  so the share is again an upper bound); the publish to the broker
                  is a no-op. With metrics: our request middleware plus Faust's
                  Prometheus monitor instead of its default one.

A licenses event is one request and one record: the floor is < 5% on their sum.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer
from faust.sensors import Monitor

import streamapp.web.licenses as web_licenses
from streamapp import ingest, metrics
from streamapp.agents.licenses import RecordProcessor
from streamapp.app import StreamApp, create_app
from streamapp.envelope import Envelope
from streamapp.models.salesforce import CustomerRecord
from streamapp.runtime.effects import Output
from streamapp.runtime.runner import BatchRuntime
from streamapp.settings import Settings
from streamapp.typing import Event
from streamapp.web.metrics import observe_requests

SETTINGS = Settings(broker_url="kafka://127.0.0.1:1", database_url="postgresql://nobody@127.0.0.1:1/none")
FLOOR = 5.0


class Message:
    def __init__(self, offset: int, key: bytes) -> None:
        self.topic, self.partition, self.offset, self.key = "licenses.inbound", offset % 4, offset, key


class Record:
    def __init__(self, offset: int, key: bytes, value: bytes) -> None:
        self.key, self.value, self.message = key, value, Message(offset, key)


def records(count: int, customers: int) -> list[Event]:
    events = []
    for n in range(count):
        cid = str(uuid.UUID(int=n % customers))
        customer = CustomerRecord(
            id=cid,
            name="acme.com",
            account_manager="Ada",
            signed_tos=True,
            # Alternating SKUs: every record changes a license, the expensive case.
            skus={"SKU1": n % 2 == 0, "SKU2": n % 2 == 1, "SKU3": n % 3 == 0},
        )
        value = Envelope(
            event_id=uuid.uuid4(), source="bench", key=cid, payload=customer.model_dump()
        ).encode()
        events.append(Record(n, cid.encode(), value))
    return cast("list[Event]", events)


class Pool:
    def acquire(self) -> Any:
        return self

    def transaction(self) -> Any:
        return self

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def records_runtime() -> BatchRuntime[Any]:
    topics = SimpleNamespace(
        updates=SimpleNamespace(get_topic_name=lambda: "licenses.updates"),
        customers=SimpleNamespace(get_topic_name=lambda: "licenses.customers"),
    )
    app = SimpleNamespace(settings=SETTINGS, db=SimpleNamespace(pool=Pool()), producer=None)
    processor = RecordProcessor(cast(StreamApp, app), cast(Any, topics), cast(Any, {}))

    async def write(conn: Any, rows: Sequence[Any]) -> None:
        return None

    # No table: state writes need Faust's changelog; the plan still reads the (empty) table.
    return BatchRuntime(cast(StreamApp, app), processor, write=write)


async def no_publish_all(topic: Any, messages: Sequence[tuple[bytes, bytes]], *, timeout: float) -> None:
    return None


async def no_publish(producer: Any, outputs: Sequence[Output], *, timeout: float) -> None:
    return None


def cpu_us_per(count: int, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        started = time.process_time()
        await run()
        return (time.process_time() - started) * 1e6 / count

    return measure


async def agent_variants(batches: int, size: int) -> dict[str, Callable[[], Awaitable[float]]]:
    runtime = records_runtime()
    data = [records(size, customers=size // 2) for _ in range(batches)]
    real = metrics.observe_batch

    def off(*_: object) -> None:
        return None

    async def run(observe: Callable[..., None]) -> None:
        metrics.observe_batch = observe
        try:
            for batch in data:
                await runtime.process(batch)
        finally:
            metrics.observe_batch = real

    return {
        "records agent, without metrics": cpu_us_per(batches * size, lambda: run(off)),
        "records agent, with metrics": cpu_us_per(batches * size, lambda: run(real)),
    }


async def web_client(middleware: bool, faust_monitor: bool) -> TestClient[Any, Any]:
    app = create_app(SETTINGS, role="ingest")
    app.loop = asyncio.get_running_loop()
    if not faust_monitor:
        app.monitor = Monitor()
    web: Any = app.web
    web.init_server()
    if not middleware:
        web.web_app.middlewares.remove(observe_requests)
    client: TestClient[Any, Any] = TestClient(TestServer(web.web_app))
    await client.start_server()
    return client


async def web_variants(
    requests: int, clients: list[TestClient[Any, Any]]
) -> dict[str, Callable[[], Awaitable[float]]]:
    body = json.dumps(
        {
            "AccountManager": "Ada Lovelace",
            "Id": str(uuid.uuid4()),
            "Name": "acme.example.com",
            "SalesEngineerId": str(uuid.uuid4()),
            "SignedTos": True,
            "SKU1": True,
            "SKU2": False,
            "SKU3": False,
        }
    ).encode()

    async def run(client: TestClient[Any, Any]) -> None:
        for _ in range(requests):
            async with client.post("/salesforce/webhook", data=body) as response:
                await response.read()
                assert response.status == 202, response.status

    without, ours, with_ = clients
    return {
        "webhook request, without metrics": cpu_us_per(requests, lambda: run(without)),
        "webhook request, with metrics": cpu_us_per(requests, lambda: run(with_)),
        "webhook request, ours only": cpu_us_per(requests, lambda: run(ours)),
    }


async def main_async(args: argparse.Namespace) -> str:
    ingest.send_all = no_publish
    setattr(web_licenses, "publish_all", no_publish_all)  # noqa: B010 - imported by name there
    clients = [await web_client(False, False), await web_client(True, False), await web_client(True, True)]
    try:
        variants = {
            **await agent_variants(args.batches, args.batch_size),
            **await web_variants(args.requests, clients),
        }
        for measure in variants.values():  # warm-up: imports, caches, label children
            await measure()
        results: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(args.rounds):
            # Every other round in reverse order, so neither variant always runs first;
            # the collector runs between measurements, not inside one.
            for name in names if round_ % 2 == 0 else names[::-1]:
                gc.collect()
                gc.disable()
                try:
                    results[name].append(await variants[name]())
                finally:
                    gc.enable()
    finally:
        for client in clients:
            await client.close()
    # The minimum: the run the shared machine disturbed least (noise only ever adds).
    return render(args, {name: min(values) for name, values in results.items()}, per_batch_call())


def per_batch_call(calls: int = 200_000) -> float:
    """CPU us of one `observe_batch` (what the runtime adds per batch), measured alone."""
    agent = SimpleNamespace(pipeline="licenses", name="licenses.records")
    started = time.process_time()
    for _ in range(calls):
        metrics.observe_batch(agent, 500, 0, 0.0)
    return (time.process_time() - started) * 1e6 / calls


def render(args: argparse.Namespace, median: dict[str, float], call_us: float) -> str:
    lines = [
        f"metrics cost per event: best of {args.rounds} rounds, CPU us of this process "
        f"({args.batches} batches of {args.batch_size} records; {args.requests} requests)",
        "",
        "| path | without metrics | with metrics | cost per event | share |",
        "|---|---|---|---|---|",
    ]

    def row(path: str, off: float, on: float) -> str:
        return (
            f"| {path} | {off:.1f} us | {on:.1f} us | {on - off:+.2f} us | {(on - off) / off * 100:+.1f}% |"
        )

    for path in ("records agent", "webhook request"):
        lines.append(row(path, median[f"{path}, without metrics"], median[f"{path}, with metrics"]))
    # One licenses event is one webhook request and one record through the agent.
    total_off = median["webhook request, without metrics"] + median["records agent, without metrics"]
    total_on = median["webhook request, with metrics"] + median["records agent, with metrics"]
    lines.append(row("**licenses event (request + record)**", total_off, total_on))
    share = (total_on - total_off) / total_off * 100
    web_off, ours = median["webhook request, without metrics"], median["webhook request, ours only"]
    lines.append(
        f"| webhook request, our middleware only (no Faust monitor) | {web_off:.1f} us | {ours:.1f} us "
        f"| {ours - web_off:+.2f} us | {(ours - web_off) / web_off * 100:+.1f}% |"
    )
    off = median["records agent, without metrics"]
    lines += [
        "",
        f"`observe_batch` alone: {call_us:.2f} us per batch = {call_us / args.batch_size:.4f} us per event "
        f"in batches of {args.batch_size} ({call_us / args.batch_size / off * 100:.3f}%), "
        f"{call_us:.2f} us in batches of one ({call_us / off * 100:.1f}% of the agent's cost above)",
        "",
        f"floor: < {FLOOR:.0f}% per licenses event: {'met' if share < FLOOR else 'NOT met'} ({share:+.1f}%)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.metrics_cost", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=500, help="the records agent's batch size")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    print(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
