"""Merchant normalization: the transaction clients send, the request and result on the topics."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamapp.auth import RESERVED_IDS

CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class Transaction(BaseModel):
    """A card transaction. `amount` may be a JSON number or a string; it stays an exact Decimal."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    date: date
    description: str = Field(min_length=1, max_length=1000)
    amount: Decimal = Field(allow_inf_nan=False, max_digits=20, decimal_places=4)

    @field_validator("amount", mode="before")
    @classmethod
    def _number_or_string(cls, value: Any) -> Any:
        # bool is an int to Python; `true` is not an amount.
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise ValueError("amount must be a number or a numeric string")
        return value

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("description must not be blank")
        return value


def description_key(description: str) -> str:
    """Cache and partition key: identical descriptions (case and spacing aside) share it."""
    normal = " ".join(description.lower().split())
    return hashlib.sha256(normal.encode()).hexdigest()[:32]


class NormalizeRequest(BaseModel):
    """What `merchants.requests` holds, keyed by `description_key` (co-partitioned with the cache)."""

    model_config = ConfigDict(frozen=True)

    request_id: uuid.UUID
    client_id: str
    transaction: Transaction
    received_at: datetime


class MerchantResult(BaseModel):
    """What `merchants.results` holds: the answer for one request."""

    model_config = ConfigDict(frozen=True)

    request_id: uuid.UUID
    client_id: str
    status: Literal["done", "failed"]
    merchant: str | None
    cache_hit: bool
    finished_at: datetime
    error: str | None = None


class WebhookRegistration(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str = Field(min_length=1, max_length=2048)
    client_id: str

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not CLIENT_ID.match(value):
            raise ValueError("client_id: 1-64 of letters, digits, _ . : - (starting with a letter or digit)")
        if value.lower() in RESERVED_IDS:
            raise ValueError(f"client_id {value!r} is reserved")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from yarl import URL

        url = URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("url must be an absolute http(s) URL")
        if url.user or url.password:
            raise ValueError("url must not carry credentials")
        return value


class ClientRecord(BaseModel):
    """A client as the hot path needs it (cached in a global table)."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    api_key_hash: str
    url: str
