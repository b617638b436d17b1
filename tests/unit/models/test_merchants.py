"""Merchant models: exact amounts, the catalogue, description keys, registration checks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from streamapp.models.merchants import Transaction, WebhookRegistration, description_key
from streamapp.rules.merchants import CATALOGUE, UNKNOWN, identify
from streamapp.web.merchants import parse_transaction


@pytest.mark.parametrize(
    ("description", "merchant"),
    [
        ("Payment Netflix APRIL***", "Netflix"),
        ("NETFLIX.COM 866-579-7172", "Netflix"),
        ("AMZN Mktp US*2K3LL1", "Amazon"),
        ("UBER *TRIP HELP.UBER.COM", "Uber"),
        ("UBER *EATS PENDING", "Uber Eats"),
        ("SQ *BLUE BOTTLE COFFEE", "Square merchant"),
        ("SPOTIFY P0F1A2B3", "Spotify"),
        ("AWS EMEA aws.amazon.co", "Amazon Web Services"),
        ("STARBUCKS STORE 00123", "Starbucks"),
        ("DELTA AIR 0062345678901", "Delta Air Lines"),
        ("something else entirely", UNKNOWN),
    ],
)
def test_identify(description: str, merchant: str) -> None:
    assert identify(description, repeat=3) == merchant


def test_catalogue_size() -> None:
    assert len({name for name, _ in CATALOGUE}) >= 30


def test_amounts_are_exact() -> None:
    assert parse_transaction(b'{"date":"2021-04-01","description":"x","amount":12.99}').amount == Decimal(
        "12.99"
    )
    assert parse_transaction(b'{"date":"2021-04-01","description":"x","amount":"0.1"}').amount == Decimal(
        "0.1"
    )
    for bad in ("1e999", "abc", True, None, [1]):
        with pytest.raises(ValidationError):
            Transaction.model_validate({"date": "2021-04-01", "description": "x", "amount": bad})


def test_description_key_ignores_case_and_spacing() -> None:
    assert description_key("Payment  Netflix") == description_key("payment netflix ")
    assert description_key("a") != description_key("b")


def test_registration_validation() -> None:
    WebhookRegistration(url="https://example.com/hook", client_id="acme-1")
    for url in ("ftp://x", "https://user:pw@example.com/", "/relative"):
        with pytest.raises(ValidationError):
            WebhookRegistration(url=url, client_id="acme")
    with pytest.raises(ValidationError):
        WebhookRegistration(url="https://example.com", client_id="bad id")
