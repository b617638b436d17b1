"""The licenses pipeline's table: each customer's last applied state, keyed by customer id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from faust.types import TableT

from streamapp.rules.licenses import LicenseState
from streamapp.runtime.effects import StateWrite

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
    """Each customer's state as last applied, decoded, in front of the table.

    Reading a state through the table (RocksDB get, JSON decode, Faust's sensors)
    and validating it with pydantic cost ~20-30 us per record, the largest single
    cost of the records agent's plan. The records agent is the only writer of
    this table, so a state it applied is the table's value until something else
    changes the table, and then only:

    - a rebalance (a new consumer generation): another worker may have written
      keys of a partition this one held before, and recovery rewrites the table;
      every entry is dropped then and the next reads go to the table again;
    - a plan whose effects were never applied (a narrowed batch): `remember` is
      called by the runtime only after a state's changelog was acknowledged and
      the local store written (`BatchRuntime`'s `after_state`), never by the plan.

    Bounded: cleared when full (the next records read the table again).
    """

    def __init__(self, table: Any, generation: Callable[[], int], capacity: int = 100_000) -> None:
        self.table = table
        self.generation = generation
        self.capacity = capacity
        self.entries: dict[bytes, LicenseState] = {}
        self.seen_generation = generation()

    def get(self, key: bytes) -> LicenseState | None:
        generation = self.generation()
        if generation != self.seen_generation:
            self.entries.clear()
            self.seen_generation = generation
        hit = self.entries.get(key)
        if hit is not None:
            return hit
        raw = self.table.get(key)
        if raw is None:
            return None
        state = LicenseState.model_validate(raw)
        self.remember(key, state)
        return state

    def remember(self, key: bytes, state: LicenseState) -> None:
        if len(self.entries) >= self.capacity:
            self.entries.clear()
        self.entries[key] = state

    def applied(self, writes: Sequence[StateWrite]) -> None:
        """The runtime wrote `writes` (changelog acknowledged, local store written)."""
        for write in writes:
            self.remember(write.key, write.value)


def encode_state(state: LicenseState) -> bytes:
    """`state` as its changelog record's value: JSON, what `dump_state` gives after a JSON round trip."""
    return _dump_state(state)


# pydantic-core's serializer itself: `model_dump_json().encode()` without the wrapper.
_dump_state = LicenseState.__pydantic_serializer__.to_json
