"""Rows to the column arrays that set-based statements take (`unnest($1::text[], ...)`)."""

from __future__ import annotations

from typing import Any


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """One list per column, `width` of them even for no rows (an empty array per parameter)."""
    return [[row[i] for row in rows] for i in range(width)]
