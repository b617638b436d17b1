"""`streamapp dev`'s drain: webhook routes refuse with 503 + Retry-After while the worker drains."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamapp.drain import RETRY_AFTER_SECONDS, refuse_while_draining


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "accepted"}, status=202)


async def test_only_webhook_routes_refuse_and_only_while_draining() -> None:
    app: Any = SimpleNamespace(draining=False, ingest_paths={"/hook"})
    server = web.Application(middlewares=[refuse_while_draining(app)])
    server.router.add_post("/hook", ok)
    server.router.add_get("/hook", ok)
    server.router.add_post("/other", ok)
    async with TestClient(TestServer(server)) as client:
        assert (await client.post("/hook")).status == 202
        app.draining = True
        refused = await client.post("/hook")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert (await refused.json())["error"] == "draining"
        # Reads and routes that accept no events keep working while the backlog drains.
        assert (await client.get("/hook")).status == 202
        assert (await client.post("/other")).status == 202
