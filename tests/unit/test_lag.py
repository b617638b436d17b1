"""The lag arithmetic behind GET /lag."""

from __future__ import annotations

from faust.types import TP

from streamapp.lag import partition_lags


def test_lag_is_end_minus_committed_per_partition_in_order() -> None:
    a0, a1, b0 = TP("a", 0), TP("a", 1), TP("b", 0)
    rows = partition_lags([b0, a1, a0], {a0: 7, a1: None, b0: 12}, {a0: 10, a1: 4, b0: 12})
    assert rows == [
        {"topic": "a", "partition": 0, "committed": 7, "end": 10, "lag": 3},
        {"topic": "a", "partition": 1, "committed": None, "end": 4, "lag": 4},  # never committed
        {"topic": "b", "partition": 0, "committed": 12, "end": 12, "lag": 0},
    ]


def test_an_unknown_end_is_no_number_and_a_stale_end_no_negative_lag() -> None:
    a0, a1 = TP("a", 0), TP("a", 1)
    rows = partition_lags([a0, a1], {a0: 5, a1: 9}, {a1: 8})
    assert [row["lag"] for row in rows] == [None, 0]
