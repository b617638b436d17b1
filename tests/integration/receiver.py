"""A real HTTP receiver for deliveries: verifies signatures and misbehaves on request."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streamapp.embedded import free_port
from streamapp.outbound.signing import InvalidSignature, verify


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool


@dataclass
class Receiver:
    """Each path has a script of status codes; the last one repeats. Secrets by path verify bodies."""

    host: str
    port: int = field(default_factory=lambda: free_port("127.0.0.2"))
    scripts: dict[str, list[int]] = field(default_factory=dict)
    extra_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    received: defaultdict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        secret = self.secrets.get(request.path)
        ok = False
        if secret is not None:
            try:
                verify(secret, dict(request.headers), raw)
                ok = True
            except InvalidSignature:
                ok = False
        self.received[request.path].append(Received(request.path, json.loads(raw), dict(request.headers), ok))
        script = self.scripts.get(request.path, [200])
        status = script.pop(0) if len(script) > 1 else script[0]
        return web.Response(
            status=status, text="x" * 100_000, headers=self.extra_headers.get(request.path, {})
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, path: str, count: int, timeout: float = 30.0) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received[path]) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.received[path]
