"""The licenses pipeline's table: each customer's last applied state, keyed by customer id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from faust.types import TableT

from streamapp.rules.licenses import LicenseState

if TYPE_CHECKING:
    from streamapp.host import Host

TABLE_NAME = "license-state"


def declare_license_state(app: Host) -> TableT[bytes, Any]:
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


class DecodedStates:
    """Decoded states in front of the table, so a record does not re-validate its customer's state.

    Loading a state with pydantic cost ~30 us per record, the largest single cost
    of the records agent's plan. An entry is used only while the table still
    holds exactly what it was decoded from (`is`, else `==`): a recovery, a
    rebalance or a plan whose effects were never applied (a narrowed batch)
    simply misses. Bounded: cleared when full (the next records re-fill it).
    """

    def __init__(self, table: Any, capacity: int = 100_000) -> None:
        self.table = table
        self.capacity = capacity
        self.entries: dict[bytes, tuple[Any, LicenseState]] = {}

    def get(self, key: bytes) -> LicenseState | None:
        raw = self.table.get(key)
        if raw is None:
            return None
        hit = self.entries.get(key)
        if hit is not None and (hit[0] is raw or hit[0] == raw):
            return hit[1]
        state = LicenseState.model_validate(raw)
        self.remember(key, raw, state)
        return state

    def dump(self, key: bytes, state: LicenseState) -> dict[str, Any]:
        """`state` as the table stores it, remembered decoded."""
        raw = dump_state(state)
        self.remember(key, raw, state)
        return raw

    def remember(self, key: bytes, raw: Any, state: LicenseState) -> None:
        if len(self.entries) >= self.capacity:
            self.entries.clear()
        self.entries[key] = (raw, state)
