"""The `webhook` channel: the payload as a signed JSON POST (Standard Webhooks headers)."""

from __future__ import annotations

import base64
import binascii

from pydantic import SecretStr, field_validator

from streamapp.outbound.channels.base import Channel, ChannelConfig, http_url, public_url
from streamapp.outbound.http import post_signed
from streamapp.outbound.models import AttemptResult, Delivery
from streamapp.outbound.signing import SECRET_PREFIX


class WebhookConfig(ChannelConfig):
    url: str
    # The signing secret (`whsec_` + base64) the receiver verifies with.
    secret: SecretStr

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        try:
            key = base64.b64decode(value.get_secret_value().removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"must be {SECRET_PREFIX} followed by base64") from exc
        if len(key) < 16:
            raise ValueError("must hold at least 16 bytes of key")
        return value


class WebhookChannel(Channel[WebhookConfig]):
    kind = "webhook"
    config_model = WebhookConfig

    def target(self, config: WebhookConfig) -> str:
        return public_url(config.url)

    async def send(self, delivery: Delivery, config: WebhookConfig) -> AttemptResult:
        return await post_signed(
            self.context.session,
            config.url,
            config.secret.get_secret_value(),
            delivery.delivery_id,
            delivery.payload,
            timeout=self.context.timeout,
            max_response_bytes=self.context.max_response_bytes,
        )
