"""License agents: records -> license updates (with table state), and the two Postgres sinks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from faust.types import TableT

from streamapp.batching import for_each_batch
from streamapp.envelope import Envelope
from streamapp.errors import describe
from streamapp.ingest import publish_durably
from streamapp.models.licenses import CustomerSnapshot, LicenseState, LicenseUpdate, decide
from streamapp.models.salesforce import CustomerRecord
from streamapp.sink import PostgresSink, PostgresWriter, event_position
from streamapp.tables.licenses import dump_state, load_state
from streamapp.tables.state import put_all
from streamapp.typing import Event, Stream, Topic

if TYPE_CHECKING:
    from streamapp.app import StreamApp

log = logging.getLogger(__name__)
PIPELINE = "licenses"

# The record agent's batches: large enough to amortise the acknowledgement wait,
# short enough in time that a lone record is not held back noticeably.
RECORD_BATCH = 500
RECORD_WITHIN = 0.05


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

    Per batch, in this order (each step durable before the next):
      1. decide every record against the state (pending writes of the batch included);
      2. write the license changes and customer snapshots to PostgreSQL (one
         idempotent transaction; rows PostgreSQL refuses are dead-lettered);
      3. publish them to the domain topics and wait for the broker's ack;
      4. write the new states to the table (changelog acknowledged first).
    A crash anywhere replays the batch from the old state: the same update ids
    come out (derived from the source event) and change nothing already written.
    The other order could lose a change for good.

    The agent writes PostgreSQL itself rather than through sink agents on the
    domain topics: each consumed hop costs Faust ~150-450 us of CPU per event, two
    of them were most of this pipeline's cost (see the README's Performance).
    """

    def __init__(self, app: StreamApp, topics: LicenseTopics, table: TableT[bytes, Any]) -> None:
        self.app = app
        self.topics = topics
        self.table = table
        self.writer: PostgresWriter[LicenseRow] = PostgresWriter(
            app, name="licenses.records", pipeline=PIPELINE, write=write_license_rows
        )

    async def run(self, stream: Stream) -> None:
        await for_each_batch(stream, RECORD_BATCH, RECORD_WITHIN, self.handle, "licenses.records")

    async def handle(self, events: Sequence[Event]) -> None:
        states: dict[bytes, tuple[Event, LicenseState]] = {}
        rows: list[tuple[Event, LicenseRow]] = []
        for event in events:
            envelope: Envelope | None = None
            try:
                envelope = Envelope.decode(event.value)
                record = CustomerRecord.model_validate(envelope.payload)
                key = record.id.encode()
                current = states[key][1] if key in states else load_state(self.table.get(key))
                decision = decide(current, envelope, record)
            except Exception as exc:
                log.warning(
                    "licenses: cannot process %s: %r",
                    event_position(event),
                    exc,
                    extra={
                        "position": event_position(event),
                        "event_id": getattr(envelope, "event_id", None),
                    },
                )
                await self.app.dead_letters.send_event(
                    event,
                    pipeline=PIPELINE,
                    reason="invalid_record",
                    detail=describe(exc),
                    event_id=str(envelope.event_id) if envelope else None,
                )
                continue
            if decision.state is not None:
                states[key] = (event, decision.state)
            rows.extend((event, update) for update in decision.updates)
            if decision.customer is not None:
                rows.append((event, decision.customer))

        await self.writer.write_rows(rows, self.reject)
        await publish_durably(self.app.settings, self.topics.updates, encoded(rows, LicenseUpdate))
        await publish_durably(self.app.settings, self.topics.customers, encoded(rows, CustomerSnapshot))
        writes = [(event, key, dump_state(state)) for key, (event, state) in states.items()]
        await put_all(self.app.settings, self.table, writes)

    async def reject(self, event: Event, row: LicenseRow, exc: Exception) -> None:
        """Dead-letter a row PostgreSQL refused, replayable to the sink agent of its kind."""
        if isinstance(row, LicenseUpdate):
            replay, row_id = self.topics.updates_replay, row.update_id
        else:
            replay, row_id = self.topics.customers_replay, row.source_event_id
        await self.app.dead_letters.send(
            pipeline=PIPELINE,
            reason="sink_rejected",
            detail=f"{describe(exc)} (a row of the record at {event_position(event)})",
            topic=replay.get_topic_name(),
            key=row.customer_id.encode(),
            value=row.model_dump_json().encode(),
            event_id=str(row_id),
        )


def encoded(rows: Sequence[tuple[Event, LicenseRow]], kind: type[LicenseRow]) -> list[tuple[bytes, bytes]]:
    """The rows of one kind as (customer id, JSON) messages, in batch order."""
    return [
        (row.customer_id.encode(), row.model_dump_json().encode()) for _, row in rows if isinstance(row, kind)
    ]


# --- sinks ------------------------------------------------------------------------

UPSERT_LICENSE = """
WITH changed AS (
    INSERT INTO licenses AS l
        (customer_id, sku, active, granted_at, revoked_at, effective_at, last_update_id)
    VALUES ($1, $2, $3,
            CASE WHEN $3 THEN $4::timestamptz END,
            CASE WHEN NOT $3 THEN $4::timestamptz END,
            $4, $5)
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
    RETURNING 1
)
INSERT INTO license_history (update_id, customer_id, sku, action, effective_at, source_event_id)
SELECT $5, $1, $2, CASE WHEN $3 THEN 'grant' ELSE 'revoke' END, $4, $6
WHERE EXISTS (SELECT 1 FROM changed)
ON CONFLICT (update_id) DO NOTHING
"""

UPSERT_CUSTOMER = """
INSERT INTO customers AS c
    (id, name, account_manager, sales_engineer_id, signed_tos, effective_at, source_event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
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


async def write_license_updates(conn: asyncpg.Connection, updates: Sequence[LicenseUpdate]) -> None:
    await conn.executemany(
        UPSERT_LICENSE,
        [
            (
                u.customer_id,
                u.sku,
                u.action == "grant",
                u.effective_at,
                u.update_id,
                u.source_event_id,
            )
            for u in updates
        ],
    )


async def write_customers(conn: asyncpg.Connection, snapshots: Sequence[CustomerSnapshot]) -> None:
    await conn.executemany(
        UPSERT_CUSTOMER,
        [
            (
                s.customer_id,
                s.name,
                s.account_manager,
                s.sales_engineer_id,
                s.signed_tos,
                s.effective_at,
                s.source_event_id,
            )
            for s in snapshots
        ],
    )


async def write_license_rows(conn: asyncpg.Connection, rows: Sequence[LicenseRow]) -> None:
    """A records batch: its license changes and its customer snapshots, in one transaction."""
    updates = [row for row in rows if isinstance(row, LicenseUpdate)]
    snapshots = [row for row in rows if isinstance(row, CustomerSnapshot)]
    if updates:
        await write_license_updates(conn, updates)
    if snapshots:
        await write_customers(conn, snapshots)


def license_update_sink(app: StreamApp) -> PostgresSink[LicenseUpdate]:
    return PostgresSink(
        app,
        name="licenses.updates-sink",
        pipeline=PIPELINE,
        decode=LicenseUpdate.model_validate_json,
        write=write_license_updates,
    )


def customer_sink(app: StreamApp) -> PostgresSink[CustomerSnapshot]:
    return PostgresSink(
        app,
        name="licenses.customers-sink",
        pipeline=PIPELINE,
        decode=CustomerSnapshot.model_validate_json,
        write=write_customers,
    )
