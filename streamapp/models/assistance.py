"""Assistance requests: what the chat bot sends, the event we keep, and the notifications it becomes."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from streamapp.envelope import derived_id
from streamapp.outbound.models import DeliveryRequest, Link, Message, MessageField

PIPELINE = "assistance"
# The owner of assistance deliveries: what the bot's token authenticates as.
BOT_OWNER = "assistance-bot"
ENDPOINT_PREFIX = "assistance:"
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


def payload_for(request: AssistanceRequest) -> dict[str, Any]:
    """What a webhook channel receives."""
    return {
        "request_id": str(request.request_id),
        "topic": request.topic,
        "description": request.description,
        "customer": request.customer.model_dump() if request.customer else None,
        "conversation_url": request.conversation_url,
        "language": request.language,
        "received_at": request.received_at.isoformat(),
    }


def message_for(request: AssistanceRequest) -> Message:
    """What people read in Slack or an e-mail."""
    fields = [MessageField(label="Topic", value=request.topic)]
    customer = request.customer.display() if request.customer else None
    if customer:
        fields.append(MessageField(label="Customer", value=customer))
    if request.language:
        fields.append(MessageField(label="Language", value=request.language))
    return Message(
        title=f"Assistance needed: {request.topic}",
        body=request.description,
        fields=tuple(fields),
        link=Link(url=request.conversation_url, text="Open the conversation")
        if request.conversation_url
        else None,
        footer=f"Request {request.request_id} · received {request.received_at:%Y-%m-%d %H:%M:%S %Z}".strip(),
        reply_to=customer if request.customer and request.customer.email else None,
    )


def endpoint_id(channel: str) -> str:
    return ENDPOINT_PREFIX + channel


def deliveries_for(request: AssistanceRequest) -> list[DeliveryRequest]:
    """One delivery per channel; ids derive from the request, so a redelivered event changes nothing."""
    payload = payload_for(request)
    message = message_for(request)
    return [
        DeliveryRequest(
            delivery_id=derived_id("assistance.delivery", str(request.request_id), channel),
            pipeline=PIPELINE,
            subject_id=str(request.request_id),
            owner=BOT_OWNER,
            endpoint_id=endpoint_id(channel),
            payload=payload,
            message=message,
        )
        for channel in request.channels
    ]


def channel_report(channels: tuple[str, ...], deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """Status per channel, and overall, from the delivery history of one request.

    A channel with no delivery row yet is `queued` (on its way through the topic).
    Overall: `delivered` when every channel succeeded, `in_progress` while any is
    still being tried, else `partially_delivered` or `failed`.
    """
    by_endpoint = {d["endpoint_id"]: d for d in deliveries}
    report: list[dict[str, Any]] = []
    for name in channels:
        delivery = by_endpoint.get(endpoint_id(name))
        if delivery is None:
            report.append({"channel": name, "type": None, "status": "queued", "attempts": []})
            continue
        report.append(
            {
                "channel": name,
                "type": delivery["channel"],
                "status": delivery["status"],
                "delivery_id": delivery["delivery_id"],
                "attempt_count": delivery["attempt_count"],
                "next_attempt_at": delivery["next_attempt_at"],
                "last_error": delivery["last_error"],
                "attempts": delivery["attempts"],
            }
        )
    statuses = {entry["status"] for entry in report}
    if statuses <= {"succeeded"}:
        overall = "delivered"
    elif statuses & {"queued", "pending", "delivering"}:
        overall = "in_progress"
    elif "succeeded" in statuses:
        overall = "partially_delivered"
    else:
        overall = "failed"
    return {"status": overall, "channels": report}
