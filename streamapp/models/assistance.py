"""Assistance requests: what the chat bot sends and the event we keep (rules/assistance.py: where it goes)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PIPELINE = "assistance"
# The owner of assistance deliveries: what the bot's token authenticates as.
BOT_OWNER = "assistance-bot"
DEFAULT_MAX_DESCRIPTION = 8000
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$")


def _no_nul(value: object) -> object:
    # PostgreSQL text cannot hold NUL; dropping it beats dead-lettering a plea for help.
    return value.replace("\x00", "") if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    value = _no_nul(value)
    if isinstance(value, str) and not value.strip():
        return None
    return value


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)

    _blank = field_validator("name", "email", mode="before")(_blank_is_none)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        local, at, domain = value.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() or c in "<>,;" for c in value):
            raise ValueError("must be an e-mail address like name@example.com")
        return value

    def display(self) -> str | None:
        if self.name and self.email:
            return f"{self.name} <{self.email}>"
        return self.name or self.email


class AssistanceIn(BaseModel):
    """The body of `POST /assistance`. Unknown fields are ignored, so the bot can add context freely."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    topic: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1)
    customer: Customer | None = None
    conversation_url: str | None = Field(default=None, max_length=2048)
    language: str | None = Field(default=None, max_length=35)

    _blank = field_validator("conversation_url", "language", mode="before")(_blank_is_none)
    _nul = field_validator("topic", "description", mode="before")(_no_nul)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_description", DEFAULT_MAX_DESCRIPTION)
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return value

    @field_validator("conversation_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value):
            raise ValueError("must be a language tag like 'en' or 'pt-BR'")
        return value


class AssistanceRequest(BaseModel):
    """The event on `assistance.requests`: the request as accepted, with the channels it was routed to."""

    model_config = ConfigDict(frozen=True)

    request_id: uuid.UUID
    received_at: datetime
    topic: str
    topic_as_sent: str
    description: str
    customer: Customer | None = None
    conversation_url: str | None = None
    language: str | None = None
    # Routed when accepted, so a replay or a reload later cannot change where it goes.
    channels: tuple[str, ...]
    routing_version: str
