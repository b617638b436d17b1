"""A merchant API client: registers a local receiver, sends transactions, verifies each signed result."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import socket
from dataclasses import dataclass, field
from datetime import date, timedelta

import aiohttp
from aiohttp import web

from simulator.sending import Tally, post
from streamapp.outbound.signing import InvalidSignature, verify

# Card descriptors as banks print them; a small set, so the worker's cache answers most.
DESCRIPTIONS = (
    "NETFLIX.COM 866-579-7172 CA",
    "SPOTIFY P0A1B2C3D4 STOCKHOLM",
    "AMZN Mktp US*2K3LM4NO5",
    "SQ *BLUE BOTTLE COFFEE OAKLAND",
    "STARBUCKS STORE 01234 SEATTLE WA",
    "UBER *TRIP HELP.UBER.COM",
    "GITHUB, INC. SAN FRANCISCO",
    "PAYPAL *DIGITALOCEAN 4029357733",
    "TESCO STORES 2231 LONDON",
    "WHOLEFDS MKT 10234 AUSTIN TX",
    "CORNER BAKERY 0042",
)


@dataclass
class Receiver:
    """The client's webhook endpoint: an aiohttp server that checks every delivery's signature."""

    host: str = "127.0.0.1"
    secret: str | None = None
    verified: int = 0
    refused: int = 0
    last_result: str = ""
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/merchant-results"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/merchant-results", self.receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # Our own socket on port 0: the kernel picks a free port and we can read it back.
        sock = socket.socket()
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.secret is None:
            return web.Response(status=503, text="not registered yet")
        try:
            verify(self.secret, request.headers, body)
        except InvalidSignature as exc:
            # A delivery that does not prove where it came from is refused, as a real client would.
            self.refused += 1
            return web.Response(status=401, text=str(exc))
        self.verified += 1
        payload = json.loads(body)
        merchant = payload.get("merchant") or {}
        self.last_result = f"{payload.get('request_id')}: {merchant.get('name')}"
        return web.Response(status=204)


@dataclass
class MerchantClient:
    worker: str
    ingest: str
    rng: random.Random
    admin_token: str | None = None
    client_id: str = field(default_factory=lambda: "sim-" + secrets.token_hex(4))
    api_key: str | None = None
    tally: Tally = field(default_factory=lambda: Tally("merchants"))

    async def register(self, session: aiohttp.ClientSession, receiver: Receiver) -> None:
        """Create the client (admin; open in dev without an admin token) with the receiver's URL."""
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        body = json.dumps({"client_id": self.client_id, "url": receiver.url}).encode()
        while True:
            status, content = await post(session, f"{self.worker}/create_webhook", body, headers)
            if status == 201:
                answer = json.loads(content)
                self.api_key = answer["api_key"]
                receiver.secret = answer["signing_secret"]
                return
            # A 4xx here is a configuration problem (e.g. an admin token the simulator lacks).
            self.tally.count(status, f"create_webhook: {content[:80].decode(errors='replace')}")
            await asyncio.sleep(5)

    def transaction(self) -> bytes:
        day = date.today() - timedelta(days=self.rng.randrange(30))
        amount = f"{self.rng.randrange(100, 20000) / 100:.2f}"
        return json.dumps(
            {"date": day.isoformat(), "description": self.rng.choice(DESCRIPTIONS), "amount": amount}
        ).encode()

    async def send(self, session: aiohttp.ClientSession) -> None:
        assert self.api_key is not None
        headers = {
            "Content-Type": "application/json",
            "client-id": self.client_id,
            "Authorization": f"Bearer {self.api_key}",
        }
        url = f"{self.ingest}/normalize_merchant"
        status, content = await post(session, url, self.transaction(), headers)
        label = ""
        if status == 202:
            label = json.loads(content).get("request_id", "")
        self.tally.count(status, label)
