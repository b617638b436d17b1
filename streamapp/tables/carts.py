"""The carts pipeline's table: each user's cart totals, keyed by user uuid."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TableT

TOTALS_TABLE = "cart-totals"


def declare_cart_totals(app: faust.App) -> TableT[bytes, Any]:
    # Raw keys, like `carts.events-by-user` (keyed by user uuid), so the table is
    # co-partitioned with its source and `/tables/cart-totals/<user uuid>` routes right.
    table = app.Table(
        TOTALS_TABLE,
        key_type=bytes,
        help="Per user: each cart's latest version, price total and item count, and their sums.",
    )
    return cast("TableT[bytes, Any]", table)
