"""An aiohttp server standing in for Slack incoming webhooks: checks the Block Kit JSON, can throttle."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streamapp.embedded import free_port

BLOCK_TYPES = {"header", "section", "actions", "context", "divider"}


@dataclass
class Posted:
    body: dict[str, Any]
    at: float


def check_blocks(body: Any) -> list[str]:
    """What Slack would refuse (a small part of its rules); empty when the message is fine."""
    problems = []
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return ["no fallback text"]
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return ["blocks must be a list of 1-50"]
    for block in blocks:
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            problems.append(f"unknown block {kind}")
        if kind == "header" and (block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150):
            problems.append("bad header")
        if kind == "section" and "text" not in block and "fields" not in block:
            problems.append("empty section")
        if kind == "section" and len(block.get("fields", [])) > 10:
            problems.append("too many fields")
    return problems


@dataclass
class SlackStandIn:
    """Each webhook path has a script of (status, headers); the last one repeats; default 200 "ok"."""

    host: str
    port: int = field(default_factory=lambda: free_port("127.0.0.2"))
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    posted: defaultdict[str, list[Posted]] = field(default_factory=lambda: defaultdict(list))
    attempts: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        now = asyncio.get_running_loop().time()
        self.attempts[request.path].append(now)
        if request.content_type != "application/json":
            return web.Response(status=400, text="invalid_payload")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if check_blocks(body):
            return web.Response(status=400, text="invalid_blocks")
        script = self.scripts.get(request.path, [(200, {})])
        status, headers = script.pop(0) if len(script) > 1 else script[0]
        if status == 200:
            self.posted[request.path].append(Posted(body, now))
            return web.Response(text="ok")
        return web.Response(status=status, text="rate_limited" if status == 429 else "error", headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, path: str, count: int, timeout: float = 30.0) -> list[Posted]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.posted[path]) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.posted[path]
