"""The licenses pipeline's table: each customer's last applied state, keyed by customer id."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TableT

from streamapp.models.licenses import LicenseState

TABLE_NAME = "license-state"


def declare_license_state(app: faust.App) -> TableT[bytes, Any]:
    # Keys are the raw bytes of the customer id, exactly like the inbound topic's
    # keys (key_type=bytes makes Faust use the raw codec), so partitioning, and
    # therefore recovery and table_route, agrees with the source topic. Values are JSON.
    table = app.Table(
        TABLE_NAME,
        key_type=bytes,
        help="Last applied license state per customer (licensed SKUs, seen event ids).",
    )
    return cast("TableT[bytes, Any]", table)


def load_state(raw: Any) -> LicenseState | None:
    return LicenseState.model_validate(raw) if raw is not None else None


def dump_state(state: LicenseState) -> dict[str, Any]:
    return state.model_dump(mode="json")
