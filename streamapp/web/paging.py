"""Keyset paging for list routes: `?after=<next of the previous page>&limit=N`, answered with `next`.

The cursor is the sort key of a page's last row, base64url-encoded JSON: opaque to
callers, so a route may change what it sorts by without breaking them, and
decoded strictly (422 naming `after`), so a forged one is a clear 4xx, never a 500.
Keyset rather than OFFSET: a page costs the same however deep it is, and rows
written meanwhile neither repeat nor go missing across pages.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streamapp.errors import ValidationFailed

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 512


class PageQuery(BaseModel):
    """The paging parameters every list route takes (other query parameters are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    after: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CURSOR,
        description="The `next` of the previous page (opaque); absent for the first page",
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Rows per page")


def encode_cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The sort key a cursor carries: `parts` strings, or a 422 naming `after`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key: Any = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        key = None
    valid = isinstance(key, list) and len(key) == parts
    valid = valid and all(isinstance(k, str) and "\x00" not in k for k in key)
    if not valid:
        raise _not_a_cursor()
    return list(key)


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """A (time, UUID) cursor, the key of the lists shown newest first (dead letters, deliveries).

    Both parts are parsed here, so a forged one is a 422 naming `after` before
    anything is read, not a cast error in PostgreSQL.
    """
    when, ident = decode_cursor(cursor, 2)
    try:
        parsed, parsed_id = datetime.fromisoformat(when), uuid.UUID(ident)
    except ValueError:
        raise _not_a_cursor() from None
    if parsed.tzinfo is None:
        raise _not_a_cursor()
    return parsed, parsed_id


def _not_a_cursor() -> ValidationFailed:
    return ValidationFailed(
        "`after` is not a cursor this route gave out (pass the `next` of the previous page)",
        errors=[{"field": "after", "type": "invalid_cursor", "message": "not a cursor of this list"}],
    )


def next_cursor(rows: list[Any], limit: int, *key: str) -> str | None:
    """The cursor after the page's last row, when there may be more (the query fetched limit + 1)."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(*(_text(last[name]) for name in key))


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
