"""`streamapp dev`'s drain: webhook routes refuse with 503 + Retry-After while the worker drains."""

from __future__ import annotations

import asyncio
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from faust.types import TP

from streamapp.drain import RETRY_AFTER_SECONDS, Drain, refuse_while_draining


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


class FakeConsumer:
    """Ten events on one partition; each commit moves the committed offset by `step`."""

    def __init__(self, step: int) -> None:
        self.tp = TP("licenses.inbound", 0)
        self._committed_offset: dict[Any, int] = {}
        self.step = step

    def assignment(self) -> set[Any]:
        return {self.tp}

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: 10 for tp in tps}

    async def commit(self) -> bool:
        for tp in self.assignment():
            self._committed_offset[tp] = min(10, self._committed_offset.get(tp, 0) + self.step)
        return True


def fake_app(step: int) -> Any:
    consumer = FakeConsumer(step)
    topics = SimpleNamespace(acks_enabled_for=lambda topic: True)
    return SimpleNamespace(draining=False, ingest_paths=set(), consumer=consumer, topics=topics)


def sleeper() -> subprocess.Popen[str]:
    return subprocess.Popen(["sleep", "60"], text=True, process_group=0)


async def test_drain_stops_senders_then_works_off_the_backlog_then_stops_the_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_app(step=4)
    sender = sleeper()
    stopped: list[bool] = []
    drain = Drain(app, [sender], timeout=10.0, stop_worker=lambda: stopped.append(app.draining))
    await drain.run()
    assert sender.poll() is not None
    assert stopped == [True]  # the worker stops only after webhooks were refused
    assert drain.left == 0
    assert "backlog processed" in capsys.readouterr().err


async def test_drain_gives_up_after_its_timeout_and_a_second_signal_stops_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = fake_app(step=0)  # the agents make no progress
    stopped: list[str] = []
    drain = Drain(app, [], timeout=0.6, stop_worker=lambda: stopped.append("stop"))
    await drain.run()
    assert stopped == ["stop"]
    assert "10 events still unprocessed" in capsys.readouterr().err

    sender = sleeper()
    forced: list[str] = []
    drain = Drain(fake_app(step=0), [sender], timeout=30.0, stop_worker=lambda: forced.append("stop"))
    drain.on_signal()
    await asyncio.sleep(0.5)
    drain.on_signal()
    await asyncio.sleep(0.1)
    assert forced == ["stop"]
    assert sender.wait(5) != 0
    assert "stopping now" in capsys.readouterr().err
