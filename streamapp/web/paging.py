"""`?limit=&offset=` for list routes: bounded, and a 422 naming the parameter when it is not."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from streamapp.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Past this an offset page is a scan, not something a person browses to.
MAX_OFFSET = 100_000
_DIGITS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def _integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    # Plain decimal digits only: int() would also take " 7", "+7" and "1_000".
    kind = "not_an_integer" if not _DIGITS.fullmatch(raw) else None
    if kind is None and not low <= int(raw) <= high:
        kind = "out_of_range"
    if kind is not None:
        message = f"must be an integer from {low} to {high}"
        raise ValidationFailed(
            f"`{name}` {message}", errors=[{"field": name, "type": kind, "message": message}]
        )
    return int(raw)


def paging(query: Mapping[str, str], default_limit: int = DEFAULT_LIMIT) -> Paging:
    return Paging(
        limit=_integer(query, "limit", default_limit, 1, MAX_LIMIT),
        offset=_integer(query, "offset", 0, 0, MAX_OFFSET),
    )
