"""The `email` channel: SMTP via aiosmtplib (STARTTLS or TLS, login), a plain-text and an HTML part."""

from __future__ import annotations

import asyncio
import html
import ssl
import time
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from typing import Literal

import aiosmtplib
from pydantic import Field, SecretStr, field_validator, model_validator

from streamapp.envelope import utcnow
from streamapp.errors import describe
from streamapp.outbound.channels.base import Channel, ChannelConfig, ChannelContext
from streamapp.outbound.channels.slack import fallback
from streamapp.outbound.models import AttemptResult, Delivery, Message, Verdict


def valid_address(value: str) -> str:
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class EmailConfig(ChannelConfig):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    # starttls: plain connection upgraded (required, never skipped); tls: TLS from the start (465).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject_prefix: str = ""
    # Replies go to the person the message is about (e.g. the customer), when known.
    reply_to_customer: bool = True
    # A CA bundle to trust instead of the system's (e.g. a private relay's certificate).
    ca_file: str | None = None
    validate_certs: bool = True

    @field_validator("username", "password", "ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `${SMTP_PASSWORD:-}` in a routing file means "no password", not "the empty one".
        return None if value == "" else value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return valid_address(value)

    @field_validator("to", "cc")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [valid_address(item) for item in value]

    @model_validator(mode="after")
    def _credentials(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.password is not None and self.security == "none":
            raise ValueError("login without TLS would send the password in clear; use starttls or tls")
        return self


def sender_domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "streamapp.invalid"


def plain_text(message: Message) -> str:
    lines = [message.title, "", message.body, ""]
    lines += [f"{field.label}: {field.value}" for field in message.fields]
    if message.link is not None:
        lines += ["", f"{message.link.text}: {message.link.url}"]
    if message.footer:
        lines += ["", "-- ", message.footer]
    return "\n".join(lines).rstrip() + "\n"


def html_text(message: Message) -> str:
    esc = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding-right:12px">{esc(f.label)}</th><td>{esc(f.value)}</td></tr>'
        for f in message.fields
    )
    body = esc(message.body).replace("\n", "<br>\n")
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family:sans-serif">',
        f"<h2>{esc(message.title)}</h2>",
        f"<p>{body}</p>",
    ]
    if rows:
        parts.append(f"<table>{rows}</table>")
    if message.link is not None:
        parts.append(f'<p><a href="{esc(message.link.url, quote=True)}">{esc(message.link.text)}</a></p>')
    if message.footer:
        parts.append(f'<p style="color:#888;font-size:smaller">{esc(message.footer)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build(delivery: Delivery, config: EmailConfig) -> EmailMessage:
    """The e-mail: the same Message-ID on every retry, so a duplicate can be recognised."""
    message = delivery.message or fallback(delivery)
    mail = EmailMessage()
    mail["Subject"] = f"{config.subject_prefix}{message.title}".replace("\n", " ")
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.to)
    if config.cc:
        mail["Cc"] = ", ".join(config.cc)
    if config.reply_to_customer and message.reply_to:
        name, address = parseaddr(message.reply_to)
        if address:
            user, _, domain = address.rpartition("@")
            mail["Reply-To"] = Address(display_name=name, username=user, domain=domain)
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = f"<{delivery.delivery_id}@{sender_domain(config.sender)}>"
    mail["X-Streamapp-Delivery-Id"] = str(delivery.delivery_id)
    mail.set_content(plain_text(message))
    mail.add_alternative(html_text(message), subtype="html")
    return mail


def recipients(config: EmailConfig) -> list[str]:
    return [address for _, address in getaddresses([*config.to, *config.cc])]


class EmailChannel(Channel[EmailConfig]):
    kind = "email"
    config_model = EmailConfig

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self._tls: dict[str, ssl.SSLContext] = {}

    def target(self, config: EmailConfig) -> str:
        return f"smtp://{config.host}:{config.port} to {', '.join(recipients(config))}"

    async def _tls_context(self, config: EmailConfig) -> ssl.SSLContext | None:
        if config.ca_file is None:
            return None
        context = self._tls.get(config.ca_file)
        if context is None:
            # Reading the bundle is file I/O: keep it off the event loop, once per file.
            context = await asyncio.to_thread(ssl.create_default_context, cafile=config.ca_file)
            self._tls[config.ca_file] = context
        return context

    async def send(self, delivery: Delivery, config: EmailConfig) -> AttemptResult:
        # The relay is the operator's own (often on a private address): it is not SSRF-guarded,
        # unlike URLs, and nothing a caller sends can change where mail goes.
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        try:
            tls = await self._tls_context(config)
            mail = build(delivery, config)
            refused, _ = await aiosmtplib.send(
                mail,
                sender=parseaddr(config.sender)[1],
                recipients=recipients(config),
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password.get_secret_value() if config.password else None,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                tls_context=tls,
                validate_certs=config.validate_certs,
                timeout=self.context.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            refusals = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            return self._failed(first.code, elapsed(), f"recipients refused: {refusals}")
        except aiosmtplib.SMTPResponseException as exc:
            return self._failed(exc.code, elapsed(), f"SMTP {exc.code}: {exc.message}")
        except aiosmtplib.SMTPTimeoutError:
            return self._failed(None, elapsed(), f"timeout after {self.context.timeout}s")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return self._failed(None, elapsed(), describe(exc))
        # Some recipients refused while others took it: a retry would mail those twice.
        note = "; ".join(f"{who}: {r.code} {r.message}" for who, r in refused.items()) or None
        return AttemptResult(
            250, elapsed(), note and f"some recipients refused: {note}", verdict=Verdict.DELIVERED
        )

    @staticmethod
    def _failed(code: int | None, latency: float, error: str) -> AttemptResult:
        # Every SMTP failure is retried on the schedule, 5xx included: relays answer 5xx for
        # passing trouble too, and a misconfigured recipient can be fixed and the delivery replayed.
        return AttemptResult(code, latency, error[:500], verdict=Verdict.RETRY)
