"""License agents: records -> license updates (with table state), and the two Postgres sinks."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faust.types import TableT

from streamapp.envelope import Envelope
from streamapp.errors import describe
from streamapp.models.licenses import CustomerEnvelope
from streamapp.rules.licenses import CustomerSnapshot, LicenseState, LicenseUpdate, decide
from streamapp.runtime.effects import Effects, Invalid, Output, StateWrite
from streamapp.runtime.runner import BatchRuntime
from streamapp.sink import PostgresSink
from streamapp.stores.licenses import write_customers, write_license_rows, write_license_updates
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
        decode = CustomerEnvelope.model_validate_json
        for event in events:
            try:
                envelope = decode(event.value)
                record = envelope.payload
                key = record.id.encode()
                if key in states:
                    current: LicenseState | None = states[key][1]
                elif key in pending:
                    current = pending[key].value
                else:
                    current = self.decoded.get(key)
                decision = decide(current, envelope, record)
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc), _event_id(event.value)))
                continue
            if decision.state is not None:
                states[key] = (event, decision.state)
            for update in decision.updates:
                effects.rows.append(update)
                effects.outputs.append(Output(self.updates_topic, key, dump_update(update)))
            if decision.customer is not None:
                effects.rows.append(decision.customer)
                effects.outputs.append(Output(self.customers_topic, key, dump_customer(decision.customer)))
        effects.state = [
            StateWrite(key, state, event.message.partition) for key, (event, state) in states.items()
        ]
        return effects


# The JSON of a model straight from its pydantic-core serializer: what
# `model_dump_json().encode()` gives, without that wrapper's argument handling and the
# str round trip (~0.5 us per message; ~1.5 messages per record).
dump_update = LicenseUpdate.__pydantic_serializer__.to_json
dump_customer = CustomerSnapshot.__pydantic_serializer__.to_json


def _event_id(raw: bytes) -> str | None:
    """The event id of a record the plan refused, if its envelope is readable, for the dead letter."""
    try:
        return str(Envelope.decode(raw).event_id)
    except ValueError:
        return None


# --- sinks ------------------------------------------------------------------------


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
