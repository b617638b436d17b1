"""The ingest tier: `streamapp ingest` processes share a port, accept webhooks, and serve nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from streamapp.embedded import free_port
from tests.integration.conftest import ADMIN, Client
from tests.integration.stack import Services, Worker, customer_record, eventually


@pytest.fixture
async def ingest_tier(services: Services, worker: Worker, tmp_path: Path) -> AsyncIterator[list[Worker]]:
    """Two ingest processes on one port, configured like the session's worker."""
    port = free_port()
    procs = [Worker(services, tmp_path, command="ingest", port=port, **worker.settings) for _ in range(2)]
    try:
        for proc in procs:
            proc.start()
            await proc.wait_ready()  # the second binds the port the first holds: SO_REUSEPORT
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def test_webhooks_through_the_ingest_tier(ingest_tier: list[Worker], client: Client) -> None:
    async with aiohttp.ClientSession() as session:
        ingest = Client(session, ingest_tier[0].url)
        record = customer_record(SKU1=False, SKU2=True)
        status, body, _ = await ingest.post("/salesforce/webhook", record)
        assert status == 202
        assert body["status"] == "accepted"
        # The worker (another process, another port) processes it.
        found = await eventually(
            lambda: client.get(f"/licenses/{record['Id']}"),
            lambda r: r[0] == 200 and bool(r[1]["licenses"]),
        )
        assert [(lic["sku"], lic["active"]) for lic in found[1]["licenses"]] == [("SKU2", True)]

        # The same checks as the worker's own route: secret, body, size.
        assert (await ingest.post("/salesforce/webhook", record, secret=None))[0] == 401
        status, body, _ = await ingest.post("/salesforce/webhook", b"{not json")
        assert (status, body["error"]) == (400, "malformed_body")
        status, body, _ = await ingest.post("/salesforce/webhook", b"x" * (128 * 1024))
        assert (status, body["error"]) == (413, "payload_too_large")

        # State lives in the workers: an ingest process says so instead of guessing.
        status, body = await ingest.get(f"/licenses/{record['Id']}")
        assert status == 404
        assert body["error"] == "not_an_ingest_route"
        assert "/salesforce/webhook" in body["detail"]
        status, body = await ingest.get("/no/such/route")
        assert (status, body["error"]) == (404, "not_found")
        assert (await ingest.get("/ready"))[0] == 200
        # Metrics on every process (either of the two may answer: no per-process counts here).
        status, text = await ingest.get("/metrics", token=ADMIN)
        assert status == 200
        assert "# TYPE streamapp_http_requests_total counter" in text
        assert "# TYPE faust_http_status_codes_total counter" in text

    # One process of the tier stops: the other still takes every new connection.
    ingest_tier[0].stop()
    async with aiohttp.ClientSession() as session:
        ingest = Client(session, ingest_tier[1].url)
        for _ in range(5):
            assert (await ingest.post("/salesforce/webhook", customer_record()))[0] == 202
