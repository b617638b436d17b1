"""Dev stand-ins for outbound channels: a mail catcher (SMTP), a Slack-like receiver, a webhook inbox.

`streamapp dev` runs them and points the default routing table at them, so
assistance requests are delivered in dev (not an ERROR and a 503 for want of a
Slack URL). Everything received is kept in memory (the latest `KEEP`), appended
to `<data dir>/standins.jsonl`, and listed as JSON at `GET /` of the receiver.
`POST /hooks/<name>` takes any client webhook (a merchant client's URL, say),
so a person can watch a signed delivery arrive without writing a receiver.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from mode import Service

log = logging.getLogger(__name__)
KEEP = 200
# What the default routing table (streamapp/assistance/routes.toml) reads, pointed at us.
PRICING_TO = "pricing-team@streamapp.localhost"


def bound_socket(host: str) -> socket.socket:
    """A listening-ready socket on a free port: we know the port before anyone connects."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class StandIns(Service):
    """The mail catcher and the Slack receiver, on free loopback ports."""

    def __init__(self, host: str, record: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.record = record
        self.received: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self.counts = {"slack": 0, "email": 0, "webhook": 0}
        self._runner: web.AppRunner | None = None
        self._smtp: asyncio.Server | None = None
        self.http_port = 0
        self.smtp_port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def env(self) -> dict[str, str]:
        """The variables the packaged routing table reads, pointing at the stand-ins."""
        return {
            "STREAMAPP_ASSISTANCE_SLACK_WEBHOOK_URL": f"{self.url}/slack/sales",
            "STREAMAPP_ASSISTANCE_SMTP_HOST": self.host,
            "STREAMAPP_ASSISTANCE_SMTP_PORT": str(self.smtp_port),
            # Loopback only, no password: nothing to protect with TLS.
            "STREAMAPP_ASSISTANCE_SMTP_SECURITY": "none",
            "STREAMAPP_ASSISTANCE_PRICING_EMAIL_TO": PRICING_TO,
            "STREAMAPP_DEV_STANDINS_URL": self.url,
        }

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/{channel}", self.slack)
        app.router.add_post("/hooks/{name}", self.hook)
        app.router.add_get("/", self.listing)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        http = bound_socket(self.host)
        self.http_port = http.getsockname()[1]
        await web.SockSite(self._runner, http).start()
        smtp = bound_socket(self.host)
        self.smtp_port = smtp.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._smtp = await loop.create_server(
            lambda: SMTP(self, hostname="standins.streamapp.localhost", loop=loop), sock=smtp
        )
        self.record.parent.mkdir(parents=True, exist_ok=True)
        log.info("dev stand-ins: Slack and inbox at %s, SMTP on %s:%d", self.url, self.host, self.smtp_port)

    async def on_stop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def keep(self, entry: dict[str, Any]) -> None:
        entry = {"received_at": datetime.now(UTC).isoformat(), **entry}
        self.received.append(entry)
        self.counts[entry["channel"]] += 1
        with self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    async def slack(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            # What Slack answers for a body it cannot read.
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return web.Response(status=400, text="invalid_payload")
        self.keep({"channel": "slack", "to": request.match_info["channel"], "text": body["text"]})
        return web.Response(text="ok")

    async def hook(self, request: web.Request) -> web.Response:
        """Any client webhook (e.g. a merchant client's URL): kept with its signature headers."""
        body = await request.read()
        signature = {k: v for k, v in request.headers.items() if k.lower().startswith("webhook-")}
        self.keep(
            {
                "channel": "webhook",
                "to": request.match_info["name"],
                "headers": signature,
                "body": body.decode("utf-8", "replace"),
            }
        )
        return web.Response(status=204)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd's hook: one accepted message."""
        message = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
        self.keep(
            {
                "channel": "email",
                "to": list(envelope.rcpt_tos),
                "subject": str(message.get("Subject", "")),
                "message_id": str(message.get("Message-ID", "")),
            }
        )
        return "250 OK"

    async def listing(self, request: web.Request) -> web.Response:
        """The latest messages, newest first, and how many arrived per channel since start."""
        return web.json_response({"counts": self.counts, "messages": list(reversed(self.received))})
