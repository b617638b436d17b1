"""Assistance requests: validation of what the bot sends."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from streamapp.models.assistance import AssistanceIn


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
