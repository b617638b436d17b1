"""The ingest role: the same app, producer-only, with the worker-only services left out."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamapp.app import create_app
from streamapp.compat import service_children
from streamapp.gaps import StreamGapHealer
from streamapp.services.merchants import HeuristicPool
from streamapp.settings import Settings
from streamapp.web.ingest import IngestWeb, only_ingest_routes

SETTINGS = Settings(
    broker_url="kafka://127.0.0.1:1",
    database_url="postgresql://nobody@127.0.0.1:1/none",
    ingest_port=7777,
)
WEBHOOKS = {"/salesforce/webhook", "/tasks/webhook", "/assistance", "/normalize_merchant"}
# Probes, metrics and the API docs: every process answers them.
EVERYWHERE = {"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/{asset}"}


def service_types(app: object) -> set[type]:
    return {type(child) for child in service_children(app)}


async def test_an_ingest_app_runs_no_worker_services() -> None:
    worker = create_app(SETTINGS)
    ingest = create_app(SETTINGS, role="ingest")
    assert not worker.producer_only
    assert ingest.producer_only  # Faust boots the web server and producer only
    assert {StreamGapHealer, HeuristicPool} <= service_types(worker)
    assert not {StreamGapHealer, HeuristicPool} & service_types(ingest)
    assert ingest.ingest_paths == worker.ingest_paths == WEBHOOKS | EVERYWHERE
    assert ingest.conf.web_port == 7777
    assert worker.conf.web_port == SETTINGS.web_port
    ingest.loop = asyncio.get_running_loop()
    assert isinstance(ingest.web, IngestWeb)


async def test_the_guard_serves_ingest_routes_and_probes_only() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[only_ingest_routes({"/hook", "/ready"})])
    for path in ("/hook", "/ready", "/licenses/{id}"):
        app.router.add_route("*", path, ok)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/hook")).status == 200
        assert (await client.get("/ready")).status == 200
        refused = await client.get("/licenses/abc")
        assert refused.status == 404
        body = await refused.json()
        assert body["error"] == "not_an_ingest_route"
        assert "/hook" in body["detail"]
        assert (await client.get("/nowhere")).status == 404
