"""What the delivery core is asked to deliver, and what an attempt came to."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

DELIVERY_TOPIC = "deliveries.requests"


class MessageField(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    value: str


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    text: str


class Message(BaseModel):
    """A human-readable notification that every channel renders its own way.

    Slack turns it into Block Kit, e-mail into a plain-text and an HTML part;
    a webhook ignores it and posts the delivery's `payload`. Keeping it
    channel-neutral is what lets a pipeline route to any channel type.
    """

    model_config = ConfigDict(frozen=True)

    title: str
    body: str
    fields: tuple[MessageField, ...] = ()
    link: Link | None = None
    footer: str | None = None
    # Where a human's reply should go (an e-mail address), when the pipeline knows.
    reply_to: str | None = None


class DeliveryRequest(BaseModel):
    """Deliver to `endpoint_id`; `delivery_id` is stable across redeliveries.

    `payload` is the machine-readable body (what webhooks receive), `message`
    the human-readable rendering for channels that show text to people.
    """

    model_config = ConfigDict(frozen=True)

    delivery_id: uuid.UUID
    pipeline: str
    # What the delivery is about (a request id) and who may read its history.
    subject_id: str
    owner: str
    endpoint_id: str
    payload: dict[str, Any]
    message: Message | None = None


@dataclass(frozen=True)
class Delivery:
    """What a channel gets to send: the stable id and the content, never the endpoint's settings."""

    delivery_id: uuid.UUID
    pipeline: str
    subject_id: str
    payload: dict[str, Any]
    message: Message | None = None


class Verdict(enum.Enum):
    """What the scheduler does after an attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"  # on the schedule, honouring retry_after
    GONE = "gone"  # the endpoint asked us to stop: disable it, dead-letter the delivery
    REJECTED = "rejected"  # retrying cannot help (e.g. a payload the receiver refuses): dead-letter now


@dataclass(frozen=True)
class AttemptResult:
    """One attempt. `status_code` is the protocol's own (HTTP status, SMTP reply code).

    Channels may set `verdict`; without one it follows HTTP: 2xx delivered,
    410 gone, anything else (or no answer) retried.
    """

    status_code: int | None
    latency_ms: float
    error: str | None
    retry_after: float | None = None
    verdict: Verdict | None = None

    @property
    def outcome(self) -> Verdict:
        if self.verdict is not None:
            return self.verdict
        if self.status_code is not None and 200 <= self.status_code < 300:
            return Verdict.DELIVERED
        if self.status_code == 410:
            return Verdict.GONE
        return Verdict.RETRY

    @property
    def ok(self) -> bool:
        return self.outcome is Verdict.DELIVERED

    @property
    def gone(self) -> bool:
        return self.outcome is Verdict.GONE

    @property
    def throttled(self) -> bool:
        """The receiver said "not now" for the whole endpoint, not just this delivery."""
        return self.retry_after is not None and self.status_code in (429, 503)
