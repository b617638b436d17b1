"""The licenses store: how a batch's upserts are split into statements."""

from __future__ import annotations

from streamapp.stores.licenses import rounds


def test_rounds_never_hold_a_key_twice_and_keep_each_keys_order() -> None:
    """One INSERT ... ON CONFLICT may not update a row twice: grant then revoke goes in two rounds."""
    items = [("c1", "SKU1", 1), ("c1", "SKU2", 2), ("c1", "SKU1", 3), ("c2", "SKU1", 4), ("c1", "SKU1", 5)]
    assert rounds(items, lambda i: (i[0], i[1])) == [
        [("c1", "SKU1", 1), ("c1", "SKU2", 2), ("c2", "SKU1", 4)],
        [("c1", "SKU1", 3)],
        [("c1", "SKU1", 5)],
    ]
    assert rounds([], lambda i: i) == []
