"""A real SMTP server for the tests (aiosmtpd): STARTTLS required, AUTH required, scripted replies."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from streamapp.embedded import free_port


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None
    tls: bool
    at: float


@dataclass
class SmtpServer:
    """Replies to DATA follow a script per first recipient (the last reply repeats; default 250)."""

    host: str
    ca: trustme.CA
    username: str = "assistance-bot"
    password: str = "smtp-pa55word-never-logged"
    port: int = field(default_factory=lambda: free_port("127.0.0.2"))
    scripts: dict[str, list[str]] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)
    received: list[Mail] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(self.host).configure_cert(context)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self,
                hostname="smtp.test",
                tls_context=context,
                require_starttls=True,
                auth_required=True,
                auth_require_tls=True,
                authenticator=self.authenticate,
                loop=loop,
            ),
            self.host,
            self.port,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        first = envelope.rcpt_tos[0]
        self.attempts[first] = self.attempts.get(first, 0) + 1
        script = self.scripts.get(first, ["250 OK"])
        reply = script.pop(0) if len(script) > 1 else script[0]
        if reply.startswith("250"):
            raw = envelope.original_content or b""
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(
                Mail(
                    sender=str(envelope.mail_from),
                    recipients=list(envelope.rcpt_tos),
                    message=message,
                    login=str(session.auth_data) if session.auth_data else None,
                    tls=session.ssl is not None,
                    at=asyncio.get_running_loop().time(),
                )
            )
        return reply

    def mails_to(self, address: str) -> list[Mail]:
        return [m for m in self.received if address in m.recipients]

    async def wait_for(self, address: str, count: int, timeout: float = 30.0) -> list[Mail]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.mails_to(address)) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.mails_to(address)


def write_ca(ca: trustme.CA, path: Path) -> Path:
    ca.cert_pem.write_to_path(str(path))
    return path
