"""The Slack and e-mail channels against real local servers: every outcome becomes the right verdict."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from pydantic import SecretStr

from streamapp.embedded import free_port
from streamapp.outbound.channels import ChannelContext
from streamapp.outbound.channels.email import EmailChannel, EmailConfig
from streamapp.outbound.channels.slack import SlackChannel, SlackConfig
from streamapp.outbound.models import Delivery, Message, Verdict
from streamapp.outbound.ssrf import BlockedDestination, GuardedConnector, parse_networks
from tests.integration.conftest import RECEIVER_HOST
from tests.integration.slack import SlackStandIn
from tests.integration.smtp import SmtpServer, write_ca

DELIVERY = Delivery(uuid.uuid4(), "assistance", "r1", {"a": 1}, Message(title="Hello", body="World"))


@pytest.fixture
async def context() -> AsyncIterator[ChannelContext]:
    connector = GuardedConnector(parse_networks([f"{RECEIVER_HOST}/32"]))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield ChannelContext(session=session, timeout=2.0, max_response_bytes=256)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    server = SlackStandIn(RECEIVER_HOST)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def smtp(ca: trustme.CA) -> AsyncIterator[SmtpServer]:
    server = SmtpServer(RECEIVER_HOST, ca)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    return str(write_ca(ca, tmp_path / "ca.pem"))


@pytest.mark.parametrize(
    ("status", "headers", "verdict", "retry_after"),
    [
        (200, {}, Verdict.DELIVERED, None),
        (400, {}, Verdict.REJECTED, None),
        (404, {}, Verdict.RETRY, None),
        (410, {}, Verdict.GONE, None),
        (429, {"Retry-After": "7"}, Verdict.RETRY, 7.0),
        (500, {}, Verdict.RETRY, None),
    ],
)
async def test_slack_outcomes(
    context: ChannelContext,
    slack: SlackStandIn,
    status: int,
    headers: dict[str, str],
    verdict: Verdict,
    retry_after: float | None,
) -> None:
    if status == 400:
        path = "/services/T/B/bad"  # the stand-in refuses a body without blocks; force one here
        slack.scripts[path] = [(400, {})]
    else:
        path = "/services/T/B/hook"
        slack.scripts[path] = [(status, headers)]
    channel = SlackChannel(context)
    result = await channel.send(DELIVERY, SlackConfig(webhook_url=SecretStr(slack.url(path))))
    assert result.status_code == status
    assert result.outcome is verdict
    assert result.retry_after == retry_after
    if status == 200:
        assert slack.posted[path][0].body["blocks"][0]["text"]["text"] == "Hello"
    else:
        assert "services" not in (result.error or "")  # the secret path is never in an error


async def test_slack_ssrf_guard_and_unreachable(context: ChannelContext, slack: SlackStandIn) -> None:
    channel = SlackChannel(context)
    with pytest.raises(BlockedDestination):
        await channel.send(DELIVERY, SlackConfig(webhook_url=SecretStr(f"http://127.0.0.1:{slack.port}/s/x")))
    closed = f"http://{RECEIVER_HOST}:{free_port(RECEIVER_HOST)}/services/T/B/SECRET"
    result = await channel.send(DELIVERY, SlackConfig(webhook_url=SecretStr(closed)))
    assert (result.status_code, result.outcome) == (None, Verdict.RETRY)
    assert result.error is not None
    assert "SECRET" not in result.error


def email(smtp: SmtpServer, ca_file: str | None, **overrides: Any) -> EmailConfig:
    fields: dict[str, Any] = {
        "host": RECEIVER_HOST,
        "port": smtp.port,
        "username": smtp.username,
        "password": smtp.password,
        "from": "help@streamapp.test",
        "to": ["a@example.com"],
        "ca_file": ca_file,
        **overrides,
    }
    return EmailConfig.model_validate(fields)


async def test_email_delivered_over_starttls_with_login(
    context: ChannelContext, smtp: SmtpServer, ca_file: str
) -> None:
    result = await EmailChannel(context).send(DELIVERY, email(smtp, ca_file, cc=["b@example.com"]))
    assert (result.status_code, result.outcome, result.error) == (250, Verdict.DELIVERED, None)
    (mail,) = smtp.received
    assert mail.tls
    assert mail.login == smtp.username
    assert mail.recipients == ["a@example.com", "b@example.com"]
    assert mail.message["Subject"] == "Hello"


async def test_email_failures_are_retried(context: ChannelContext, smtp: SmtpServer, ca_file: str) -> None:
    channel = EmailChannel(context)
    smtp.refuse = {"a@example.com", "gone@example.com"}
    cases = [
        (email(smtp, ca_file, password="wrong"), 535, "SMTP 535"),
        (email(smtp, ca_file), 550, "recipients refused: a@example.com: 550"),
        (email(smtp, None), None, "CERTIFICATE_VERIFY_FAILED"),  # not our CA: no silent downgrade
        (email(smtp, ca_file, port=free_port(RECEIVER_HOST)), None, "Connect"),
        (
            email(smtp, None, security="none", username=None, password=None, to=["ok@example.com"]),
            530,
            "STARTTLS",
        ),
    ]
    for config, code, error in cases:
        result = await channel.send(DELIVERY, config)
        assert result.outcome is Verdict.RETRY, result
        assert result.status_code == code, result
        assert error in (result.error or ""), result
        assert smtp.password not in (result.error or "")
    assert smtp.received == []


async def test_email_partly_refused_is_not_sent_twice(
    context: ChannelContext, smtp: SmtpServer, ca_file: str
) -> None:
    smtp.refuse = {"gone@example.com"}
    result = await EmailChannel(context).send(
        DELIVERY, email(smtp, ca_file, to=["a@example.com", "gone@example.com"])
    )
    assert result.outcome is Verdict.DELIVERED
    assert result.error is not None
    assert result.error.startswith("some recipients refused: gone@example.com: 550")
    assert [m.recipients for m in smtp.received] == [["a@example.com"]]
