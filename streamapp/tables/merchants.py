"""The merchants pipeline's tables: the client cache (global) and the result cache (by description)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from faust.types import TableT

if TYPE_CHECKING:
    from streamapp.host import Host

CLIENTS_TABLE = "merchant-clients"
CACHE_TABLE = "merchant-cache"


def declare_client_cache(app: Host) -> TableT[bytes, Any]:
    # Global: every worker answers every client's requests, so each needs all clients.
    table = app.GlobalTable(
        CLIENTS_TABLE, key_type=bytes, help="API clients for the hot path (PostgreSQL is the truth)."
    )
    return cast("TableT[bytes, Any]", table)


def declare_result_cache(app: Host) -> TableT[bytes, Any]:
    # Keyed like `merchants.requests` (by description key), so co-partitioned with it.
    table = app.Table(
        CACHE_TABLE, key_type=bytes, help="Merchant answers by description key, with the time found."
    )
    return cast("TableT[bytes, Any]", table)
