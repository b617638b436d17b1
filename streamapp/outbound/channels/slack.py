"""The `slack` channel: a Block Kit message to an incoming-webhook URL (the URL is the secret)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

from streamapp.outbound.channels.base import Channel, ChannelConfig, http_url
from streamapp.outbound.http import json_body, post
from streamapp.outbound.models import AttemptResult, Delivery, Message, Verdict

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BUTTON_TEXT_MAX = 75
URL_MAX = 3000


class SlackConfig(ChannelConfig):
    webhook_url: SecretStr
    # Put before the message, e.g. "<!here>" or "<@U0123ABC>"; taken as written (it is configuration).
    mention: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        http_url(value.get_secret_value())
        return value

    @field_validator("mention", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


def escape(text: str) -> str:
    """Slack mrkdwn control characters: without this, a description could say <!channel>."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback(delivery: Delivery) -> Message:
    """A message for deliveries that carry only a payload."""
    body = json.dumps(delivery.payload, indent=2, sort_keys=True, default=str)
    return Message(title=f"{delivery.pipeline} notification", body=body, footer=delivery.subject_id)


def render(message: Message, mention: str | None = None) -> dict[str, Any]:
    """The Block Kit body: header, text, fields, a button for the link, a context footer."""
    text = clip(escape(message.body), TEXT_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(message.title, HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(f"{mention} {text}", TEXT_MAX)}}
        if mention
        else {"type": "section", "text": {"type": "mrkdwn", "text": text}},
    ]
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": clip(f"*{escape(field.label)}*\n{escape(field.value)}", FIELD_MAX),
                    }
                    for field in message.fields[:FIELDS_MAX]
                ],
            }
        )
    if message.link is not None and len(message.link.url) <= URL_MAX:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": clip(message.link.text, BUTTON_TEXT_MAX)},
                        "url": message.link.url,
                    }
                ],
            }
        )
    if message.footer:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": clip(escape(message.footer), TEXT_MAX)}],
            }
        )
    # `text` is what notifications and old clients show.
    summary = clip(f"{message.title}: {message.body}", TEXT_MAX)
    return {"text": f"{mention} {escape(summary)}" if mention else escape(summary), "blocks": blocks}


class SlackChannel(Channel[SlackConfig]):
    kind = "slack"
    config_model = SlackConfig
    # Slack allows about one message a second per incoming webhook.
    default_rate_limit = 1.0

    def target(self, config: SlackConfig) -> str:
        return f"slack webhook at {urlsplit(config.webhook_url.get_secret_value()).hostname}"

    async def send(self, delivery: Delivery, config: SlackConfig) -> AttemptResult:
        url = config.webhook_url.get_secret_value()
        body = json_body(render(delivery.message or fallback(delivery), config.mention))
        result = await post(
            self.context.session,
            url,
            body,
            {},
            timeout=self.context.timeout,
            max_response_bytes=self.context.max_response_bytes,
        )
        if result.status_code == 400:
            # invalid_payload / invalid_blocks: the same body will be refused every time.
            return AttemptResult(400, result.latency_ms, result.error, verdict=Verdict.REJECTED)
        return result
