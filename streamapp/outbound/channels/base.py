"""The channel interface: how a delivery reaches one kind of endpoint (webhook, Slack, e-mail...)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from streamapp.outbound.models import AttemptResult, Delivery


class ChannelConfig(BaseModel):
    """An endpoint's settings for one channel type. Secrets are `SecretStr`, so they never print."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # Messages per second to this endpoint; unset means the channel type's default.
    rate_limit: float | None = Field(default=None, gt=0)


C = TypeVar("C", bound=ChannelConfig)


@dataclass(frozen=True)
class ChannelContext:
    """What the delivery service shares with every channel: the SSRF-guarded session and limits."""

    session: aiohttp.ClientSession
    timeout: float
    max_response_bytes: int


class Channel(abc.ABC, Generic[C]):
    """One channel type. Implement `send` and `target`; declare `kind` and `config_model`.

    `send` turns every failure into an `AttemptResult` (setting `verdict` when
    the protocol is not HTTP-like); the delivery service does the rest:
    durable retries, rate limits, dead letters, replay and attempt history.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]]
    # Messages per second when the endpoint's config does not say (None: unlimited).
    default_rate_limit: ClassVar[float | None] = None

    def __init__(self, context: ChannelContext) -> None:
        self.context = context

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> C:
        """Validate stored or configured settings (pydantic's ValidationError when invalid)."""
        # `config_model` is the C of the subclass; a ClassVar cannot say so.
        return cast(C, cls.config_model.model_validate(dict(raw)))

    @classmethod
    def min_interval(cls, config: ChannelConfig) -> float | None:
        """Seconds between two sends to one endpoint, from its rate limit."""
        rate = config.rate_limit or cls.default_rate_limit
        return 1.0 / rate if rate else None

    @abc.abstractmethod
    def target(self, config: C) -> str:
        """Where an attempt went, for the attempt history: never a secret."""

    @abc.abstractmethod
    async def send(self, delivery: Delivery, config: C) -> AttemptResult:
        """One attempt at delivering."""

    async def close(self) -> None:
        """Release what the channel holds (the shared session is not its own)."""
        return None


def stored(config: BaseModel) -> dict[str, Any]:
    """The settings as JSON for the endpoint row, secrets revealed (the one place that happens)."""
    value = _reveal(config.model_dump(mode="python", by_alias=True, exclude_none=True))
    assert isinstance(value, dict)
    return value


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(item) for item in value]
    return value


def http_url(value: str) -> str:
    """Validate an http(s) URL with a host (a field validator's body)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def public_url(url: str) -> str:
    """The URL without credentials, query or fragment: what is safe to show in the history."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
