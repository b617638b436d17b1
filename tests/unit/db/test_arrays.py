"""Rows to column arrays for `unnest` statements."""

from __future__ import annotations

from streamapp.db.arrays import columns


def test_rows_become_one_array_per_column() -> None:
    assert columns([(1, "a", True), (2, "b", False)], 3) == [[1, 2], ["a", "b"], [True, False]]


def test_no_rows_still_give_one_empty_array_per_parameter() -> None:
    assert columns([], 3) == [[], [], []]
