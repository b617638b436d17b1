"""Assistance requests: validation of what the bot sends, and the notifications a request becomes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from streamapp.models.assistance import (
    BOT_OWNER,
    AssistanceIn,
    AssistanceRequest,
    channel_report,
    deliveries_for,
    message_for,
    payload_for,
)
from streamapp.outbound.models import DeliveryRequest


def request(**overrides: Any) -> AssistanceRequest:
    fields: dict[str, Any] = {
        "request_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "received_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "topic": "sales",
        "topic_as_sent": " Sales ",
        "description": "Need 500 seats",
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "conversation_url": "https://chat.example.com/c/1",
        "language": "en",
        "channels": ("sales-slack", "ops"),
        "routing_version": "abc",
        **overrides,
    }
    return AssistanceRequest.model_validate(fields)


def test_valid_input_is_cleaned() -> None:
    got = AssistanceIn.model_validate(
        {
            "topic": " Sales ",
            "description": " help\x00 me ",
            "customer": {"name": " ", "email": " ada@example.com "},
            "conversation_url": "",
            "language": "pt-BR",
            "bot_version": "ignored",
        }
    )
    assert (got.topic, got.description, got.conversation_url, got.language) == (
        "Sales",
        "help me",
        None,
        "pt-BR",
    )
    assert got.customer is not None
    assert (got.customer.name, got.customer.email) == (None, "ada@example.com")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topic": "sales", "description": ""}, "description"),
        ({"topic": "sales", "description": " \n "}, "description"),
        ({"topic": "", "description": "x"}, "topic"),
        ({"topic": "x" * 101, "description": "x"}, "topic"),
        ({"topic": 7, "description": "x"}, "topic"),
        ({"topic": "sales", "description": "x", "customer": {"email": "ada"}}, "customer.email"),
        ({"topic": "sales", "description": "x", "customer": {"email": "a b@c.d"}}, "customer.email"),
        ({"topic": "sales", "description": "x", "customer": "Ada"}, "customer"),
        ({"topic": "sales", "description": "x", "conversation_url": "ftp://x"}, "conversation_url"),
        ({"topic": "sales", "description": "x", "language": "english"}, "language"),
    ],
)
def test_invalid_input(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AssistanceIn.model_validate(body)
    assert field in {".".join(map(str, e["loc"])) for e in info.value.errors()}


def test_description_limit_comes_from_the_settings() -> None:
    AssistanceIn.model_validate({"topic": "t", "description": "x" * 10}, context={"max_description": 10})
    with pytest.raises(ValidationError, match="at most 10 characters"):
        AssistanceIn.model_validate({"topic": "t", "description": "x" * 11}, context={"max_description": 10})


def test_message_and_payload() -> None:
    req = request()
    message = message_for(req)
    assert message.title == "Assistance needed: sales"
    assert message.body == "Need 500 seats"
    assert [(f.label, f.value) for f in message.fields] == [
        ("Topic", "sales"),
        ("Customer", "Ada <ada@example.com>"),
        ("Language", "en"),
    ]
    assert message.link is not None
    assert message.link.url == "https://chat.example.com/c/1"
    assert message.footer == f"Request {req.request_id} · received 2026-01-02 03:04:05 UTC"
    assert message.reply_to == "Ada <ada@example.com>"
    assert payload_for(req) == {
        "request_id": str(req.request_id),
        "topic": "sales",
        "description": "Need 500 seats",
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "conversation_url": "https://chat.example.com/c/1",
        "language": "en",
        "received_at": "2026-01-02T03:04:05+00:00",
    }
    bare = message_for(request(customer=None, conversation_url=None, language=None))
    assert [f.label for f in bare.fields] == ["Topic"]
    assert (bare.link, bare.reply_to) == (None, None)
    assert message_for(request(customer={"name": "Ada"})).reply_to is None


def test_one_delivery_per_channel_with_stable_ids() -> None:
    first = deliveries_for(request())
    again = deliveries_for(request())
    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]
    assert len({d.delivery_id for d in first}) == 2
    assert [d.endpoint_id for d in first] == ["assistance:sales-slack", "assistance:ops"]
    assert {(d.pipeline, d.owner, d.subject_id) for d in first} == {
        ("assistance", BOT_OWNER, "00000000-0000-4000-8000-000000000001")
    }
    # The wire form round-trips, message included (a replayed delivery is rendered the same).
    assert DeliveryRequest.model_validate_json(first[0].model_dump_json()) == first[0]


def delivery(endpoint: str, status: str) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint,
        "channel": "slack",
        "status": status,
        "delivery_id": "d",
        "attempt_count": 1,
        "next_attempt_at": None,
        "last_error": None,
        "attempts": [],
    }


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        (["succeeded", "succeeded"], "delivered"),
        (["succeeded", None], "in_progress"),
        (["succeeded", "pending"], "in_progress"),
        (["succeeded", "delivering"], "in_progress"),
        (["succeeded", "dead"], "partially_delivered"),
        (["dead", "disabled"], "failed"),
    ],
)
def test_channel_report(statuses: list[str | None], overall: str) -> None:
    names = ("a", "b")
    found = [delivery(f"assistance:{n}", s) for n, s in zip(names, statuses, strict=True) if s is not None]
    report = channel_report(names, found)
    assert report["status"] == overall
    assert [c["channel"] for c in report["channels"]] == ["a", "b"]
    assert [c["status"] for c in report["channels"]] == [s or "queued" for s in statuses]
