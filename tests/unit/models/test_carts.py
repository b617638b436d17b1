"""Carts pure logic: request validation, paging, snapshots and the per-user totals fold."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from streamapp.errors import ValidationFailed
from streamapp.models.carts import (
    CartView,
    EntryRow,
    ItemRow,
    address_fields,
    item_fields,
    page_request,
    parse_uuid,
    quantity_to_add,
    quantity_to_set,
)
from streamapp.rules.carts import CartEvent, apply_event, cart_event, dump_totals, load_totals

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def field_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> str:
    return str(exc.value.errors[0]["field"])


def test_item_fields_keep_the_price_the_client_meant() -> None:
    fields = item_fields("  Mug ", "", 19.99)
    assert fields.name == "Mug"
    assert fields.price == Decimal("19.99")
    assert item_fields("Free", "x", 0.0).price == 0


@pytest.mark.parametrize(
    ("name", "description", "price", "field"),
    [
        ("", "", 1.0, "name"),
        ("   ", "", 1.0, "name"),
        ("x" * 201, "", 1.0, "name"),
        ("ok", "d" * 4001, 1.0, "description"),
        ("ok", "", -0.01, "price"),
        ("ok", "", math.nan, "price"),
        ("ok", "", math.inf, "price"),
        ("ok", "", 1e13, "price"),
    ],
)
def test_item_fields_refuse(name: str, description: str, price: float, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        item_fields(name, description, price, prefix="item.")
    assert field_of(exc) == f"item.{field}"


def test_page_request_defaults_and_bounds() -> None:
    page = page_request("", "", 0, 0)
    assert (page.sorting, page.order, page.page, page.size, page.offset) == ("created", "asc", 1, 20, 0)
    page = page_request("PRICE", "DESC", 3, 100)
    assert (page.column, page.order, page.offset) == ("price", "desc", 200)
    assert page.pages(0) == 0
    assert page.pages(200) == 2
    assert page.pages(201) == 3
    assert page_request("name", "asc", 1, 1).size == 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("password", "asc", 1, 10), "request.sorting"),
        (("name; DROP TABLE items", "asc", 1, 10), "request.sorting"),
        (("name", "sideways", 1, 10), "request.order"),
        (("name", "asc", 1, 101), "request.size"),
        (("name", "asc", 1, -1), "request.size"),
        (("name", "asc", -1, 10), "request.requested"),
        (("name", "asc", 2**62, 10), "request.requested"),
    ],
)
def test_page_request_refuses(args: tuple[str, str, int, int], field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        page_request(*args)
    assert field_of(exc) == field


def test_uuids_and_quantities() -> None:
    value = uuid.uuid4()
    assert parse_uuid(str(value), "x") == value
    for bad_uuid in ("", "nope", "1234"):
        with pytest.raises(ValidationFailed):
            parse_uuid(bad_uuid, "cart_uuid")
    assert quantity_to_add(1, 10) == 1
    assert quantity_to_set(0, 10) == 0
    for bad_quantity in (0, -1, 11):
        with pytest.raises(ValidationFailed):
            quantity_to_add(bad_quantity, 10)
    for bad_quantity in (-1, 11):
        with pytest.raises(ValidationFailed):
            quantity_to_set(bad_quantity, 10)


def test_address_fields() -> None:
    fields = address_fields(
        address_uuid="",
        line1=" Main St 1 ",
        line2="",
        line3="",
        city="Berlin",
        province="",
        zip_code="10115",
        country_code="de",
        other="",
    )
    assert (fields.uuid, fields.line1, fields.country_code) == (None, "Main St 1", "DE")
    base = {
        "address_uuid": "",
        "line1": "a",
        "line2": "",
        "line3": "",
        "city": "b",
        "province": "",
        "zip_code": "",
        "country_code": "DE",
        "other": "",
    }
    for change, field in (
        ({"line1": " "}, "address.line1"),
        ({"city": ""}, "address.city"),
        ({"country_code": "Germany"}, "address.countryCode"),
        ({"country_code": "D1"}, "address.countryCode"),
        ({"address_uuid": "x"}, "address.UUID"),
        ({"other": "o" * 201}, "address.other"),
    ):
        with pytest.raises(ValidationFailed) as exc:
            address_fields(**{**base, **change})
        assert field_of(exc) == field


def view(cart: uuid.UUID, user: uuid.UUID, version: int, *entries: tuple[str, int]) -> CartView:
    rows = [
        EntryRow(ItemRow(uuid.uuid4(), f"item {price}", "", Decimal(price), NOW, NOW), quantity)
        for price, quantity in entries
    ]
    return CartView(cart, user, version, rows, None, NOW, NOW)


def test_price_total_is_exact() -> None:
    cart = view(uuid.uuid4(), uuid.uuid4(), 1, ("0.1", 3), ("19.99", 2))
    assert cart.price_total == Decimal("40.28")
    assert cart.item_count == 5
    event = CartEvent.decode(cart_event("cart.item_added", cart).encode())
    assert event.cart.price_total == Decimal("40.28")
    assert event.version == 1


def test_totals_fold_is_idempotent_and_ignores_older_versions() -> None:
    user, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = cart_event("cart.item_added", view(a, user, 1, ("2.50", 2)))
    second = cart_event("cart.item_added", view(a, user, 2, ("2.50", 4)))
    other = cart_event("cart.item_added", view(b, user, 1, ("1", 1)))
    totals = apply_event(None, first)
    assert totals is not None
    totals = apply_event(totals, second)
    assert totals is not None
    assert apply_event(totals, first) is None  # older
    assert apply_event(totals, second) is None  # replayed
    totals = apply_event(totals, other)
    assert totals is not None
    assert (totals.price_total, totals.items, len(totals.carts)) == (Decimal(11), 5, 2)
    assert load_totals(dump_totals(totals)) == totals
    assert load_totals(None) is None
