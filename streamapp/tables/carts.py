"""The carts pipeline's table: each user's cart totals, keyed by user uuid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from faust.types import TableT

if TYPE_CHECKING:
    from streamapp.host import Host

TOTALS_TABLE = "cart-totals"


def declare_cart_totals(app: Host) -> TableT[bytes, Any]:
    # Raw keys, like `carts.events-by-user` (keyed by user uuid), so the table is
    # co-partitioned with its source and `/tables/cart-totals/<user uuid>` routes right.
    table = app.Table(
        TOTALS_TABLE,
        key_type=bytes,
        help="Per user: each cart's latest version, price total and item count, and their sums.",
    )
    return cast("TableT[bytes, Any]", table)
