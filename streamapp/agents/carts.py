"""Cart agents: re-key cart events by user, then keep each user's cart totals in a table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faust.types import TableT

from streamapp.errors import describe
from streamapp.rules.carts import CartEvent, UserCartTotals, apply_event, dump_totals, load_totals
from streamapp.runtime.effects import Effects, Invalid, Output, StateWrite
from streamapp.runtime.runner import BatchRuntime
from streamapp.typing import Event, Topic

if TYPE_CHECKING:
    from streamapp.host import Host

PIPELINE = "carts"
BATCH = 500
WITHIN = 0.05


@dataclass
class CartTopics:
    events: Topic  # keyed by cart uuid: what the relay publishes, for everyone
    by_user: Topic  # the same events keyed by user uuid, co-partitioned with the totals table


class ByUser:
    """`carts.events` -> `carts.events-by-user`, unchanged bytes, new key; acked only once re-published."""

    name = "carts.by-user"
    pipeline = PIPELINE
    batch_size = BATCH
    batch_within = WITHIN

    def __init__(self, app: Host, topics: CartTopics) -> None:
        self.by_user = topics.by_user.get_topic_name()
        self.runtime: BatchRuntime[Any] = BatchRuntime(app, self)

    def plan(self, events: Sequence[Event]) -> Effects[Any]:
        effects: Effects[Any] = Effects()
        for event in events:
            try:
                decoded = CartEvent.decode(event.value)
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc)))
                continue
            effects.outputs.append(Output(self.by_user, str(decoded.user_uuid).encode(), event.value))
        return effects


class TotalsKeeper:
    """Applies cart events to the per-user totals. Replays change nothing (per-cart versions)."""

    name = "carts.user-totals"
    pipeline = PIPELINE
    batch_size = BATCH
    batch_within = WITHIN

    def __init__(self, app: Host, table: TableT[bytes, Any]) -> None:
        self.table = table
        self.runtime: BatchRuntime[Any] = BatchRuntime(app, self, table=table)

    def plan(self, events: Sequence[Event]) -> Effects[Any]:
        effects: Effects[Any] = Effects()
        pending: dict[bytes, tuple[Event, UserCartTotals]] = {}
        for event in events:
            try:
                decoded = CartEvent.decode(event.value)
                key = str(decoded.user_uuid).encode()
                current = pending[key][1] if key in pending else load_totals(self.table.get(key))
                updated = apply_event(current, decoded)
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc)))
                continue
            if updated is not None:
                pending[key] = (event, updated)
        effects.state = [
            StateWrite(key, dump_totals(totals), event.message.partition)
            for key, (event, totals) in pending.items()
        ]
        return effects
