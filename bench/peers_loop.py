"""The hand-written peer of the licenses pipeline: one aiokafka consumer, asyncpg, no framework.

    python -m bench.peers_loop --broker HOST:PORT --dsn postgresql://... --group G

The same business work as the worker's records agent: decode the envelope and the
CustomerRecord (pydantic), `decide` against the customer's state, upsert licenses +
license_history + customers with streamapp's own SQL in one transaction per fetched
batch, then commit the offsets. What it leaves out is what makes the worker durable
and observable: the state is a dict in this process (no changelog), no domain
topics, no dead letters, no retries, no web server.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.marker import mark_first
from streamapp.envelope import Envelope
from streamapp.models.licenses import CustomerRecord
from streamapp.rules.licenses import CustomerSnapshot, LicenseState, LicenseUpdate, decide
from streamapp.stores.licenses import write_customers, write_license_updates

INBOUND = "licenses.inbound"


async def run(broker: str, dsn: str, group: str, max_records: int) -> None:
    consumer = AIOKafkaConsumer(
        INBOUND,
        bootstrap_servers=broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Tansu answers JoinGroup only after session_timeout/2 (see DESIGN.md).
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    conn = await asyncpg.connect(dsn)
    await consumer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    states: dict[str, LicenseState] = {}
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            if not batches:
                continue
            mark_first()
            updates: list[LicenseUpdate] = []
            customers: list[CustomerSnapshot] = []
            for messages in batches.values():
                for message in messages:
                    assert message.value is not None
                    envelope = Envelope.decode(message.value)
                    record = CustomerRecord.model_validate(envelope.payload)
                    decision = decide(states.get(record.id), envelope, record)
                    if decision.state is not None:
                        states[record.id] = decision.state
                    updates.extend(decision.updates)
                    if decision.customer is not None:
                        customers.append(decision.customer)
            async with conn.transaction():
                if updates:
                    await write_license_updates(conn, updates)
                if customers:
                    await write_customers(conn, customers)
            await consumer.commit()
    finally:
        await consumer.stop()
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.peers_loop", description=__doc__.split("\n")[0])
    parser.add_argument("--broker", required=True, help="host:port")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--max-records", type=int, default=2000, help="records per fetched batch")
    args = parser.parse_args(argv)
    asyncio.run(run(args.broker, args.dsn, args.group, args.max_records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
