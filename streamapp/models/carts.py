"""Carts and items: request validation and the rows we read back from PostgreSQL."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from streamapp.errors import Forbidden, StreamappError, ValidationFailed

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Wire name -> column. Only these may reach ORDER BY.
SORTABLE = {"name": "name", "price": "price", "created": "created", "updated": "updated", "uuid": "uuid"}
DEFAULT_SORTING = "created"
ORDERS = ("asc", "desc")
MAX_NAME = 200
MAX_DESCRIPTION = 4000
MAX_ADDRESS_FIELD = 200
# Prices are `numeric` (exact sums); a bound keeps them sane.
MAX_PRICE = Decimal("999999999999")


ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Caller:
    """Who is calling (a verified token's subject and roles): `streamapp.rpc.carts.auth` makes them."""

    user_uuid: uuid.UUID
    roles: frozenset[str]

    @property
    def admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden("this call needs the admin role")


class FailedPrecondition(StreamappError):
    """The request is valid but the cart is not in a state that allows it."""

    status = 409
    reason = "failed_precondition"


def invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}", errors=[{"field": field, "type": kind, "message": message}]
    )


def parse_uuid(value: str, field: str) -> UUID:
    if not value:
        raise invalid(field, "is required", "missing")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise invalid(field, "is not a UUID", "uuid_parsing") from exc


# --- items ------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemFields:
    name: str
    description: str
    price: Decimal


def to_price(value: float, field: str = "price") -> Decimal:
    """The double from the wire as the decimal its shortest repr shows (19.99, not 19.989999...)."""
    if not math.isfinite(value):
        raise invalid(field, "must be a finite number")
    if value < 0:
        raise invalid(field, "must not be negative")
    price = Decimal(repr(value))
    if price > MAX_PRICE:
        raise invalid(field, f"must be at most {MAX_PRICE}")
    return price


def item_fields(name: str, description: str, price: float, prefix: str = "") -> ItemFields:
    clean = name.strip()
    if not clean:
        raise invalid(f"{prefix}name", "must not be empty", "missing")
    if len(clean) > MAX_NAME:
        raise invalid(f"{prefix}name", f"must be at most {MAX_NAME} characters")
    if len(description) > MAX_DESCRIPTION:
        raise invalid(f"{prefix}description", f"must be at most {MAX_DESCRIPTION} characters")
    return ItemFields(clean, description, to_price(price, f"{prefix}price"))


# --- paging -----------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    sorting: str
    order: Literal["asc", "desc"]
    page: int  # 1-based
    size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def column(self) -> str:
        return SORTABLE[self.sorting]

    def pages(self, rows: int) -> int:
        return -(-rows // self.size)


def page_request(sorting: str, order: str, requested: int, size: int) -> PageRequest:
    """Defaults for proto3's zero values: sorting by creation, ascending, page 1, 20 a page."""
    sort = sorting.strip().lower() or DEFAULT_SORTING
    if sort not in SORTABLE:
        raise invalid("request.sorting", f"must be one of {', '.join(sorted(SORTABLE))}")
    direction = order.strip().lower() or "asc"
    if direction not in ORDERS:
        raise invalid("request.order", "must be asc or desc")
    if size < 0 or size > MAX_PAGE_SIZE:
        raise invalid("request.size", f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    if requested < 0:
        raise invalid("request.requested", "must not be negative (pages start at 1; 0 means 1)")
    page_size = size or DEFAULT_PAGE_SIZE
    # Far beyond any real catalogue; keeps OFFSET within bigint.
    if requested > 2**40 // page_size:
        raise invalid("request.requested", "is too large")
    return PageRequest(sort, "desc" if direction == "desc" else "asc", requested or 1, page_size)


# --- addresses and quantities ------------------------------------------------------


@dataclass(frozen=True)
class AddressFields:
    uuid: UUID | None
    line1: str
    line2: str
    line3: str
    city: str
    province: str
    zip_code: str
    country_code: str
    other: str


def address_fields(
    *,
    address_uuid: str,
    line1: str,
    line2: str,
    line3: str,
    city: str,
    province: str,
    zip_code: str,
    country_code: str,
    other: str,
) -> AddressFields:
    values = {
        "line1": line1.strip(),
        "line2": line2.strip(),
        "line3": line3.strip(),
        "city": city.strip(),
        "province": province.strip(),
        "zipCode": zip_code.strip(),
        "countryCode": country_code.strip().upper(),
        "other": other.strip(),
    }
    for name in ("line1", "city", "countryCode"):
        if not values[name]:
            raise invalid(f"address.{name}", "must not be empty", "missing")
    for name, value in values.items():
        if len(value) > MAX_ADDRESS_FIELD:
            raise invalid(f"address.{name}", f"must be at most {MAX_ADDRESS_FIELD} characters")
    country = values["countryCode"]
    if len(country) != 2 or not (country.isascii() and country.isalpha()):
        raise invalid("address.countryCode", "must be an ISO 3166-1 alpha-2 code such as DE")
    return AddressFields(
        uuid=parse_uuid(address_uuid, "address.UUID") if address_uuid else None,
        line1=values["line1"],
        line2=values["line2"],
        line3=values["line3"],
        city=values["city"],
        province=values["province"],
        zip_code=values["zipCode"],
        country_code=country,
        other=values["other"],
    )


def quantity_to_add(quantity: int, maximum: int) -> int:
    if quantity <= 0:
        raise invalid("quantity", "must be at least 1")
    if quantity > maximum:
        raise invalid("quantity", f"must be at most {maximum}")
    return quantity


def quantity_to_set(quantity: int, maximum: int) -> int:
    if quantity < 0:
        raise invalid("quantity", "must not be negative (0 removes the entry)")
    if quantity > maximum:
        raise invalid("quantity", f"must be at most {maximum}")
    return quantity


# --- what PostgreSQL gives back -----------------------------------------------------


@dataclass(frozen=True)
class ItemRow:
    uuid: UUID
    name: str
    description: str
    price: Decimal
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class EntryRow:
    item: ItemRow
    quantity: int


@dataclass(frozen=True)
class AddressRow:
    uuid: UUID
    line1: str
    line2: str
    line3: str
    city: str
    province: str
    zip_code: str
    country_code: str
    other: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class CartView:
    uuid: UUID
    user_uuid: UUID
    version: int
    entries: list[EntryRow]
    address: AddressRow | None
    created: datetime
    updated: datetime

    @property
    def price_total(self) -> Decimal:
        """From the items' current prices, exactly (numeric), converted to double once on the wire."""
        return sum((entry.item.price * entry.quantity for entry in self.entries), Decimal(0))

    @property
    def item_count(self) -> int:
        return sum(entry.quantity for entry in self.entries)
