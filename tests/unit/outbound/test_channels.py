"""Channel types, pure parts: settings, Block Kit and e-mail rendering, targets, attempt verdicts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from streamapp.outbound.channels import channel_types, stored
from streamapp.outbound.channels.base import public_url
from streamapp.outbound.channels.email import EmailChannel, EmailConfig, build, html_text, plain_text
from streamapp.outbound.channels.slack import SlackChannel, SlackConfig, escape, render
from streamapp.outbound.channels.webhook import WebhookChannel, WebhookConfig
from streamapp.outbound.models import AttemptResult, Delivery, Link, Message, MessageField, Verdict

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE = Message(
    title="Assistance needed: sales",
    body="Big <deal> & more",
    fields=(MessageField(label="Customer", value="Ada <ada@example.com>"),),
    link=Link(url="https://chat.example.com/c/1", text="Open the conversation"),
    footer="Request 1",
    reply_to="Ada Lovelace <ada@example.com>",
)
DELIVERY = Delivery(
    delivery_id=uuid.UUID("00000000-0000-4000-8000-00000000000a"),
    pipeline="assistance",
    subject_id="r1",
    payload={"request_id": "r1"},
    message=MESSAGE,
)


def email_config(**overrides: Any) -> EmailConfig:
    fields: dict[str, Any] = {
        "host": "smtp.example.com",
        "username": "bot",
        "password": "pw",
        "from": "Help <help@example.com>",
        "to": ["pricing@example.com"],
        **overrides,
    }
    return EmailConfig.model_validate(fields)


def test_builtin_channel_types() -> None:
    types = channel_types()
    assert {k: v for k, v in types.items() if k in ("webhook", "slack", "email")} == {
        "webhook": WebhookChannel,
        "slack": SlackChannel,
        "email": EmailChannel,
    }
    assert SlackChannel.min_interval(SlackConfig(webhook_url=SecretStr("https://h.test/x"))) == 1.0
    assert (
        SlackChannel.min_interval(SlackConfig(webhook_url=SecretStr("https://h.test/x"), rate_limit=5)) == 0.2
    )
    assert EmailChannel.min_interval(email_config()) is None


def test_slack_block_kit() -> None:
    body = render(MESSAGE)
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "actions", "context"]
    assert body["blocks"][1]["text"]["text"] == "Big &lt;deal&gt; &amp; more"
    assert body["blocks"][2]["fields"][0]["text"] == "*Customer*\nAda &lt;ada@example.com&gt;"
    assert body["blocks"][3]["elements"][0]["url"] == "https://chat.example.com/c/1"
    assert body["text"] == "Assistance needed: sales: Big &lt;deal&gt; &amp; more"
    mentioned = render(MESSAGE, "<!here>")
    assert mentioned["blocks"][1]["text"]["text"].startswith("<!here> Big &lt;deal&gt;")
    assert mentioned["text"].startswith("<!here> ")
    assert escape("<@U1>") == "&lt;@U1&gt;"


def test_slack_limits() -> None:
    huge = Message(
        title="t" * 500,
        body="b" * 5000,
        fields=tuple(MessageField(label=f"f{i}", value="v" * 3000) for i in range(15)),
        link=Link(url="https://x.test/" + "p" * 4000, text="open"),
    )
    body = render(huge)
    header, text, fields = body["blocks"][:3]
    assert len(header["text"]["text"]) == 150
    assert len(text["text"]["text"]) == 3000
    assert len(fields["fields"]) == 10
    assert all(len(f["text"]) <= 2000 for f in fields["fields"])
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]  # no over-long link


def test_slack_settings_and_target_hide_the_url() -> None:
    config = SlackConfig(webhook_url=SecretStr("https://hooks.slack.com/services/T/B/SECRET"), mention="")
    assert config.mention is None
    assert "SECRET" not in repr(config)
    channel = SlackChannel.__new__(SlackChannel)
    assert channel.target(config) == "slack webhook at hooks.slack.com"
    with pytest.raises(ValidationError):
        SlackConfig(webhook_url=SecretStr("hooks.slack.com/services/x"))


def test_email_message() -> None:
    mail = build(DELIVERY, email_config(cc=["boss@example.com"], subject_prefix="[help] "))
    assert mail["Subject"] == "[help] Assistance needed: sales"
    assert mail["From"] == "Help <help@example.com>"
    assert mail["To"] == "pricing@example.com"
    assert mail["Cc"] == "boss@example.com"
    assert mail["Reply-To"] == "Ada Lovelace <ada@example.com>"
    assert mail["Message-ID"] == f"<{DELIVERY.delivery_id}@example.com>"
    assert mail["X-Streamapp-Delivery-Id"] == str(DELIVERY.delivery_id)
    assert mail.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in mail.iter_parts())
    assert "Big <deal> & more" in text
    assert "Customer: Ada <ada@example.com>" in text
    assert "Open the conversation: https://chat.example.com/c/1" in text
    assert "Big &lt;deal&gt; &amp; more" in html
    assert "<td>Ada &lt;ada@example.com&gt;</td>" in html
    no_reply = build(DELIVERY, email_config(reply_to_customer=False))
    assert no_reply["Reply-To"] is None


def test_email_renders_a_payload_only_delivery() -> None:
    bare = Delivery(uuid.uuid4(), "merchants", "r9", {"status": "done"})
    mail = build(bare, email_config())
    assert mail["Subject"] == "merchants notification"
    assert '"status": "done"' in plain_text(bare.message or Message(title="x", body='"status": "done"'))
    assert "<h2>x</h2>" in html_text(Message(title="x", body="y"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password": None}, "username and password go together"),
        ({"security": "none"}, "password in clear"),
        ({"from": "nobody"}, "not an e-mail address"),
        ({"to": []}, "at least 1"),
        ({"port": 70000}, "less than or equal"),
        ({"security": "ssl"}, "starttls"),
        ({"smtp_host": "x"}, "Extra inputs"),
    ],
)
def test_email_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        email_config(**overrides)


def test_email_settings_defaults() -> None:
    config = email_config(username="", password="", ca_file="")
    assert (config.username, config.password, config.ca_file) == (None, None, None)
    assert (config.port, config.security, config.validate_certs) == (587, "starttls", True)
    assert "pw" not in repr(email_config())
    channel = EmailChannel.__new__(EmailChannel)
    assert channel.target(email_config(to=["A <a@x.test>"], cc=["b@x.test"])) == (
        "smtp://smtp.example.com:587 to a@x.test, b@x.test"
    )


def test_webhook_settings_and_target() -> None:
    config = WebhookConfig(url="https://u:p@client.test:8443/hook?token=abc#x", secret=SecretStr(SECRET))
    assert WebhookChannel.__new__(WebhookChannel).target(config) == "https://client.test:8443/hook"
    assert public_url("http://[::1]:8080/x?y") == "http://[::1]:8080/x"
    for bad in ("whsec_###", "whsec_c2hvcnQ="):
        with pytest.raises(ValidationError, match="secret"):
            WebhookConfig(url="https://client.test/", secret=SecretStr(bad))


def test_stored_reveals_secrets_for_the_endpoint_row_only() -> None:
    class Nested(BaseModel):
        keys: list[SecretStr]

    config = email_config()
    assert stored(config) == {
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "username": "bot",
        "password": "pw",
        "from": "Help <help@example.com>",
        "to": ["pricing@example.com"],
        "cc": [],
        "subject_prefix": "",
        "reply_to_customer": True,
        "validate_certs": True,
    }
    assert EmailConfig.model_validate(stored(config)) == config  # what claim_due reads back
    assert stored(Nested(keys=[SecretStr("a")])) == {"keys": ["a"]}


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (AttemptResult(200, 1.0, None), Verdict.DELIVERED),
        (AttemptResult(204, 1.0, None), Verdict.DELIVERED),
        (AttemptResult(410, 1.0, "gone"), Verdict.GONE),
        (AttemptResult(500, 1.0, "x"), Verdict.RETRY),
        (AttemptResult(None, 1.0, "timeout"), Verdict.RETRY),
        (AttemptResult(250, 1.0, None, verdict=Verdict.DELIVERED), Verdict.DELIVERED),
        (AttemptResult(410, 1.0, None, verdict=Verdict.RETRY), Verdict.RETRY),  # an SMTP code, not HTTP
        (AttemptResult(400, 1.0, None, verdict=Verdict.REJECTED), Verdict.REJECTED),
    ],
)
def test_attempt_verdicts(result: AttemptResult, verdict: Verdict) -> None:
    assert result.outcome is verdict
    assert result.ok is (verdict is Verdict.DELIVERED)
    assert result.gone is (verdict is Verdict.GONE)


def test_throttled_means_the_whole_endpoint_waits() -> None:
    assert AttemptResult(429, 1.0, None, retry_after=2).throttled
    assert AttemptResult(503, 1.0, None, retry_after=2).throttled
    assert not AttemptResult(429, 1.0, None).throttled
    assert not AttemptResult(500, 1.0, None, retry_after=2).throttled
