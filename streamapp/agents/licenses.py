"""License agents: records -> license updates (with table state), and the two Postgres sinks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
from faust.types import TableT

from streamapp.envelope import Envelope
from streamapp.errors import describe
from streamapp.models.licenses import CustomerRecord
from streamapp.rules.licenses import CustomerSnapshot, LicenseState, LicenseUpdate, decide
from streamapp.runtime.effects import Effects, Invalid, Output, StateWrite
from streamapp.runtime.runner import BatchRuntime
from streamapp.sink import PostgresSink
from streamapp.tables.licenses import DecodedStates, encode_state
from streamapp.typing import Event, Topic

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)
PIPELINE = "licenses"


@dataclass
class LicenseTopics:
    inbound: Topic
    # Domain topics: every license change and customer snapshot, for other systems.
    updates: Topic
    customers: Topic
    # Where `streamapp dead-letters replay` sends rows PostgreSQL refused; a sink
    # agent each writes them. Low volume: only replays travel here.
    updates_replay: Topic
    customers_replay: Topic


LicenseRow = LicenseUpdate | CustomerSnapshot


class RecordProcessor:
    """Turns customer records into license changes, keeping per-customer state in a table.

    `plan` decides every record against the state (the batch's pending states
    included): license changes and customer snapshots become rows for PostgreSQL
    and messages for the domain topics, the new states become table writes. The
    runtime applies them in its one order (`streamapp/runtime/runner.py`). The
    update ids derive from the source event, so a replay changes nothing.

    The agent writes PostgreSQL itself rather than through sink agents on the
    domain topics: each consumed hop costs Faust ~150-450 us of CPU per event, two
    of them were most of this pipeline's cost (see the README's Performance).
    """

    name = "licenses.records"
    pipeline = PIPELINE
    # Large enough to amortise the acknowledgement wait and to write each customer's
    # state once for many of its records (a backlog over 1,000 customers: ~0.45
    # changelog records per record at 2,000, ~0.9 at 500); `batch_within` keeps a
    # lone record from being held back noticeably.
    batch_size = 2000
    batch_within = 0.05

    def __init__(self, app: Host, topics: LicenseTopics, table: TableT[bytes, Any]) -> None:
        self.topics = topics
        self.table = table
        self.decoded = DecodedStates(table, lambda: app.consumer_generation_id)
        self.updates_topic = topics.updates.get_topic_name()
        self.customers_topic = topics.customers.get_topic_name()
        self.runtime: BatchRuntime[LicenseRow] = BatchRuntime(
            app,
            self,
            write=write_license_rows,
            table=table,
            after_state=self.decoded.applied,
            encode_state=encode_state,
        )

    def plan(self, events: Sequence[Event]) -> Effects[LicenseRow]:
        return self.plan_after(events, {})

    def plan_after(self, events: Sequence[Event], pending: Mapping[Any, StateWrite]) -> Effects[LicenseRow]:
        """`plan`, with the states of `pending` (written by a plan not applied yet) taken as the table's."""
        effects: Effects[LicenseRow] = Effects()
        states: dict[bytes, tuple[Event, LicenseState]] = {}
        for event in events:
            envelope: Envelope | None = None
            try:
                envelope = Envelope.decode(event.value)
                record = CustomerRecord.model_validate(envelope.payload)
                key = record.id.encode()
                if key in states:
                    current: LicenseState | None = states[key][1]
                elif key in pending:
                    current = pending[key].value
                else:
                    current = self.decoded.get(key)
                decision = decide(current, envelope, record)
            except Exception as exc:
                event_id = str(envelope.event_id) if envelope else None
                effects.invalid.append(Invalid(event, describe(exc), event_id))
                continue
            if decision.state is not None:
                states[key] = (event, decision.state)
            for update in decision.updates:
                effects.rows.append(update)
                effects.outputs.append(Output(self.updates_topic, key, update.model_dump_json().encode()))
            if decision.customer is not None:
                effects.rows.append(decision.customer)
                value = decision.customer.model_dump_json().encode()
                effects.outputs.append(Output(self.customers_topic, key, value))
        effects.state = [
            StateWrite(key, state, event.message.partition) for key, (event, state) in states.items()
        ]
        return effects


# --- sinks ------------------------------------------------------------------------

# Set-based: one statement per batch (per round, see `rounds`), whatever its size.
UPSERT_LICENSES = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::timestamptz[], $5::uuid[], $6::uuid[])
        AS i(customer_id, sku, active, effective_at, update_id, source_event_id)
), changed AS (
    INSERT INTO licenses AS l
        (customer_id, sku, active, granted_at, revoked_at, effective_at, last_update_id)
    SELECT customer_id, sku, active,
           CASE WHEN active THEN effective_at END,
           CASE WHEN NOT active THEN effective_at END,
           effective_at, update_id
    FROM input
    ON CONFLICT (customer_id, sku) DO UPDATE SET
        active = excluded.active,
        granted_at = CASE WHEN excluded.active THEN excluded.effective_at ELSE l.granted_at END,
        revoked_at = CASE WHEN excluded.active THEN NULL ELSE excluded.effective_at END,
        effective_at = excluded.effective_at,
        last_update_id = excluded.last_update_id,
        updated_at = now()
    -- Only a real change, and never one older than what is stored: a replayed or
    -- reordered update changes no row and therefore adds no history line.
    WHERE l.active IS DISTINCT FROM excluded.active AND l.effective_at <= excluded.effective_at
    RETURNING l.last_update_id
)
INSERT INTO license_history (update_id, customer_id, sku, action, effective_at, source_event_id)
SELECT i.update_id, i.customer_id, i.sku, CASE WHEN i.active THEN 'grant' ELSE 'revoke' END,
       i.effective_at, i.source_event_id
FROM input i JOIN changed c ON c.last_update_id = i.update_id
ON CONFLICT (update_id) DO NOTHING
"""

UPSERT_CUSTOMERS = """
INSERT INTO customers AS c
    (id, name, account_manager, sales_engineer_id, signed_tos, effective_at, source_event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                     $7::uuid[])
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name,
    account_manager = excluded.account_manager,
    sales_engineer_id = excluded.sales_engineer_id,
    signed_tos = excluded.signed_tos,
    effective_at = excluded.effective_at,
    source_event_id = excluded.source_event_id,
    updated_at = now()
WHERE c.effective_at <= excluded.effective_at AND c.source_event_id <> excluded.source_event_id
"""

K = TypeVar("K")
V = TypeVar("V")


def rounds(items: Sequence[V], key: Callable[[V], K]) -> list[list[V]]:
    """Split `items` so that no round holds a key twice, keeping each key's order.

    One INSERT ... ON CONFLICT DO UPDATE may not touch a row twice (a batch can
    grant and then revoke the same license), so such rows go to the next round.
    Almost every batch is one round.
    """
    out: list[list[V]] = []
    seen: dict[K, int] = {}
    for item in items:
        index = seen.get(key(item), -1) + 1
        seen[key(item)] = index
        if index == len(out):
            out.append([])
        out[index].append(item)
    return out


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


async def write_license_updates(conn: asyncpg.Connection, updates: Sequence[LicenseUpdate]) -> None:
    for batch in rounds(updates, lambda u: (u.customer_id, u.sku)):
        rows = [
            (u.customer_id, u.sku, u.action == "grant", u.effective_at, u.update_id, u.source_event_id)
            for u in batch
        ]
        await conn.execute(UPSERT_LICENSES, *_columns(rows, 6))


async def write_customers(conn: asyncpg.Connection, snapshots: Sequence[CustomerSnapshot]) -> None:
    for batch in rounds(snapshots, lambda s: s.customer_id):
        rows = [
            (
                s.customer_id,
                s.name,
                s.account_manager,
                s.sales_engineer_id,
                s.signed_tos,
                s.effective_at,
                s.source_event_id,
            )
            for s in batch
        ]
        await conn.execute(UPSERT_CUSTOMERS, *_columns(rows, 7))


async def write_license_rows(conn: asyncpg.Connection, rows: Sequence[LicenseRow]) -> None:
    """A records batch: its license changes and its customer snapshots, in one transaction."""
    updates = [row for row in rows if isinstance(row, LicenseUpdate)]
    snapshots = [row for row in rows if isinstance(row, CustomerSnapshot)]
    if updates:
        await write_license_updates(conn, updates)
    if snapshots:
        await write_customers(conn, snapshots)


def license_update_sink(app: Host) -> PostgresSink[LicenseUpdate]:
    return PostgresSink(
        app,
        name="licenses.updates-sink",
        pipeline=PIPELINE,
        decode=LicenseUpdate.model_validate_json,
        write=write_license_updates,
    )


def customer_sink(app: Host) -> PostgresSink[CustomerSnapshot]:
    return PostgresSink(
        app,
        name="licenses.customers-sink",
        pipeline=PIPELINE,
        decode=CustomerSnapshot.model_validate_json,
        write=write_customers,
    )
