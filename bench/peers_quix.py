"""The Quix Streams peer of the licenses pipeline: stateful `apply` + its own PostgreSQLSink.

    .venv-bench/bin/python -m bench.peers_quix --broker HOST:PORT --dsn postgresql://... \\
        --group G --state-dir DIR [--commit-interval 1.0]

Runs in `.venv-bench` (quixstreams pins pydantic < 2.14, the project pins 2.14.3;
see bench/requirements-peers.txt), with the project root on PYTHONPATH so the
business rules are the project's own: the envelope and the CustomerRecord are
decoded with pydantic, `decide` runs against the customer's state, kept in Quix's
state store (RocksDB + changelog topic), exactly as streamapp keeps it in its table.

Idiomatic Quix: one `StreamingDataFrame`, `apply(stateful=True, expand=True)` turns
a record into rows, one `PostgreSQLSink` writes them; the table and the primary key
are chosen per row (both are callables in the sink's API), upserting on the key.
Its generic upsert replaces the row's columns: no "only if newer" guard and no
granted_at/revoked_at bookkeeping on `licenses` (the history rows carry the times).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from quixstreams import Application, State
from quixstreams.sinks.base.item import SinkItem
from quixstreams.sinks.community.postgresql import PostgreSQLSink

from bench.marker import mark_first
from streamapp.envelope import Envelope
from streamapp.models.licenses import CustomerRecord
from streamapp.rules.licenses import LicenseState, decide

INBOUND = "licenses.inbound"
STATE_KEY = "license-state"
# Quix turns on librdkafka's idempotent producer by default. DESIGN.md: Tansu 0.6 has
# no idempotent or transactional producer, so we run at least once, like streamapp.
# (A probe on Tansu 0.6.0 with librdkafka 2.12.1 and the default left on did write
# the whole changelog, 100 of 100 keys: the setting is our choice, not a workaround.)
PRODUCER_CONFIG = {"enable.idempotence": False}
# Tansu answers JoinGroup only after session_timeout/2 (see DESIGN.md).
CONSUMER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def to_rows(raw: bytes, state: State) -> list[dict[str, Any]]:
    """One inbound record -> the rows it changes (history, licenses, customers)."""
    mark_first()
    envelope = Envelope.decode(raw)
    record = CustomerRecord.model_validate(envelope.payload)
    stored = state.get(STATE_KEY)
    current = LicenseState.model_validate(stored) if stored is not None else None
    decision = decide(current, envelope, record)
    if decision.state is not None:
        state.set(STATE_KEY, decision.state.model_dump(mode="json"))
    rows: list[dict[str, Any]] = []
    for update in decision.updates:
        rows.append(
            {
                "update_id": str(update.update_id),
                "customer_id": update.customer_id,
                "sku": update.sku,
                "action": update.action,
                "effective_at": update.effective_at,
                "source_event_id": str(update.source_event_id),
            }
        )
        rows.append(
            {
                "customer_id": update.customer_id,
                "sku": update.sku,
                "active": update.action == "grant",
                "effective_at": update.effective_at,
                "last_update_id": str(update.update_id),
            }
        )
    if decision.customer is not None:
        c = decision.customer
        rows.append(
            {
                "id": c.customer_id,
                "name": c.name,
                "account_manager": c.account_manager,
                "sales_engineer_id": c.sales_engineer_id,
                "signed_tos": c.signed_tos,
                "effective_at": c.effective_at,
                "source_event_id": str(c.source_event_id),
            }
        )
    return rows


def table_of(item: SinkItem) -> str:
    value = item.value
    if "update_id" in value:
        return "license_history"
    return "licenses" if "sku" in value else "customers"


def primary_key_of(item: SinkItem) -> list[str]:
    return {
        "license_history": ["update_id"],
        "licenses": ["customer_id", "sku"],
        "customers": ["id"],
    }[table_of(item)]


def build_app(args: argparse.Namespace) -> Application:
    dsn = urlsplit(args.dsn)
    # The embedded server listens on a Unix socket: postgresql://postgres:@/postgres?host=/dir
    socket_dir = parse_qs(dsn.query).get("host", [None])[0]
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        producer_extra_config=PRODUCER_CONFIG,
        consumer_extra_config=CONSUMER_CONFIG,
        loglevel="WARNING",
    )
    sink = PostgreSQLSink(
        host=socket_dir or dsn.hostname or "127.0.0.1",
        port=dsn.port or 5432,
        dbname=dsn.path.lstrip("/") or "postgres",
        user=dsn.username or "postgres",
        password=dsn.password or "",
        table_name=table_of,
        primary_key_columns=primary_key_of,
        upsert_on_primary_key=True,
        include_metadata=False,
    )
    topic = app.topic(INBOUND, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(topic)
    sdf = sdf.apply(to_rows, stateful=True, expand=True)
    sdf.sink(sink)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.peers_quix", description=__doc__.split("\n")[0])
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--commit-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    build_app(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
