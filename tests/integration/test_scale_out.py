"""Several workers in one consumer group on the embedded broker: partitions shared, taken over, given back."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from simulator.records import Population
from streamapp.embedded import free_port
from tests.integration.conftest import ADMIN_AUTH, SECRET
from tests.integration.stack import Worker, customer_record, eventually
from tests.integration.test_crash import RECORDS, SENDERS, send_until_accepted

PARTITIONS = set(range(4))  # STREAMAPP_TOPIC_PARTITIONS in the test stack
TABLE = "license-state"


async def local_partitions(session: aiohttp.ClientSession, worker: Worker) -> set[int]:
    try:
        async with session.get(f"{worker.url}/tables/", headers=ADMIN_AUTH) as response:
            body = await response.json()
    except aiohttp.ClientError:
        return set()
    state = next(t for t in body["tables"] if t["name"] == TABLE)
    return set(state["local_partitions"])


async def assignment(session: aiohttp.ClientSession, workers: list[Worker]) -> list[set[int]]:
    return [await local_partitions(session, w) for w in workers]


def shared(parts: list[set[int]]) -> bool:
    """Every partition held by exactly one worker, and every worker holds some."""
    union: set[int] = set().union(*parts)
    return union == PARTITIONS and sum(map(len, parts)) == len(PARTITIONS) and all(parts)


async def post_records(session: aiohttp.ClientSession, workers: list[Worker], n: int) -> dict[str, set[str]]:
    """One record per new customer, spread over the workers' web servers; returns what each implies."""
    expected: dict[str, set[str]] = {}
    for i in range(n):
        skus = {f"SKU{k}": random.random() < 0.5 for k in (1, 2, 3)}
        record = customer_record(**skus)
        expected[record["Id"]] = {sku for sku, on in skus.items() if on}
        target = workers[i % len(workers)]
        async with session.post(
            f"{target.url}/salesforce/webhook", json=record, headers={"X-Webhook-Secret": SECRET}
        ) as response:
            assert response.status == 202, await response.text()
    return expected


async def assert_outcome(
    session: aiohttp.ClientSession, workers: list[Worker], db: asyncpg.Pool, expected: dict[str, set[str]]
) -> list[tuple[str, str]]:
    """PostgreSQL must match `expected`; returns the table answers that do not (the caller asserts)."""
    ids = list(expected)

    async def rows() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {cid: set() for cid in ids}
        for row in await db.fetch(
            "SELECT customer_id, sku FROM licenses WHERE active AND customer_id = ANY($1)", ids
        ):
            found[row["customer_id"]].add(row["sku"])
        return found

    assert await eventually(rows, lambda found: found == expected, timeout=90) == expected

    async def table_value(worker: Worker, cid: str) -> tuple[int, Any]:
        async with session.get(f"{worker.url}/tables/{TABLE}/{cid}", headers=ADMIN_AUTH) as response:
            return response.status, await response.json()

    async def differing() -> list[tuple[str, str]]:
        # Any worker answers for any key: the owner's, routed between workers.
        wrong: list[tuple[str, str]] = []
        for cid, skus in expected.items():
            for worker in workers:
                status, body = await table_value(worker, cid)
                if status != 200 or set(body["value"]["licensed"]) != skus:
                    wrong.append((worker.url, cid))
        return wrong

    # The table is written after PostgreSQL (the runtime's order of effects): allow a moment.
    return await eventually(differing, lambda wrong: not wrong, timeout=20, interval=1.0)


def assert_fresh(stale: list[tuple[str, str]], when: str) -> None:
    """Table answers match PostgreSQL, also on a worker that just recovered moved partitions.

    They did not before the worker checked end offsets with a fetch: Tansu 0.6.0
    lists too small an end after multi-record batches (test_broker_offsets.py), and
    recovery stopped before the changelog's tail (1-10 of 300 keys stale here).
    """
    assert not stale, f"{len(stale)} table answers stale {when}: {stale[:3]}"


@pytest.fixture
async def second(worker: Worker, tmp_path: Path) -> Any:
    """Another worker of the same app (the session worker's settings, its own ports)."""
    settings = {**worker.settings, "STREAMAPP_CARTS_GRPC_PORT": str(free_port())}
    extra = Worker(worker.services, tmp_path)
    # The same environment as the session worker, but its own gRPC (and web) port.
    extra.settings = settings
    extra.start()
    yield extra
    extra.stop()


async def test_workers_share_take_over_and_give_back(
    worker: Worker, second: Worker, db: asyncpg.Pool
) -> None:
    await second.wait_ready()
    async with aiohttp.ClientSession() as session:
        parts = await eventually(lambda: assignment(session, [worker, second]), shared, timeout=90)
        assert shared(parts), parts
        expected = await post_records(session, [worker, second], 60)
        assert await assert_outcome(session, [worker, second], db, expected) == []

        # A graceful stop: the survivor takes every partition over.
        stopped = time.monotonic()
        second.stop()
        parts = await eventually(
            lambda: assignment(session, [worker]), lambda p: p[0] == PARTITIONS, timeout=90
        )
        took_over = time.monotonic() - stopped
        assert parts == [PARTITIONS]
        more = await post_records(session, [worker], 30)
        stale = await assert_outcome(session, [worker], db, {**expected, **more})
        assert_fresh(stale, "after a graceful stop")

        # And back: a new worker joins and gets its share.
        second.start()
        await second.wait_ready()
        parts = await eventually(lambda: assignment(session, [worker, second]), shared, timeout=90)
        assert shared(parts), parts
        rest = await post_records(session, [worker, second], 30)
        stale = await assert_outcome(session, [worker, second], db, {**expected, **more, **rest})
        assert_fresh(stale, "after a worker joined")
    print(f"graceful stop: partitions taken over in {took_over:.1f}s")


async def test_sigkill_of_one_worker_mid_stream(worker: Worker, second: Worker, db: asyncpg.Pool) -> None:
    """The survivor keeps running, takes the dead worker's partitions over, and every record counts once."""
    await second.wait_ready()
    population = Population(300, seed=random.randrange(2**32))
    plan = [
        (c.id, json.dumps(c.record()).encode())
        for c in (population.license_changing() for _ in range(RECORDS))
    ]
    expected = {c.id: set(c.licensed()) for c in population.customers}
    ids = list(expected)
    lanes: list[list[bytes]] = [[] for _ in range(SENDERS)]
    for cid, body in plan:
        lanes[hash(cid) % SENDERS].append(body)
    accepted = 0

    async def lane(items: list[bytes], session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for body in items:
            # The survivor's web server takes every request: the test is about the consumers.
            await send_until_accepted(session, worker, body, str(uuid.uuid4()))
            accepted += 1

    async with aiohttp.ClientSession() as session:
        await eventually(lambda: assignment(session, [worker, second]), shared, timeout=90)
        senders = [asyncio.create_task(lane(items, session)) for items in lanes]
        while accepted < RECORDS * 0.3:
            await asyncio.sleep(0.05)
        second.kill()
        killed = time.monotonic()
        parts = await eventually(
            lambda: assignment(session, [worker]), lambda p: p[0] == PARTITIONS, timeout=120
        )
        took_over = time.monotonic() - killed
        sending = asyncio.gather(*senders)
        assert worker.proc is not None
        while not sending.done():
            # A survivor that dies (as Faust's ConsistencyError did on a too-small
            # listed end offset) must fail the test, not leave the senders retrying.
            if worker.proc.poll() is not None:
                sending.cancel()
                pytest.fail(f"the survivor stopped (exit {worker.proc.returncode}); see {worker.log_path}")
            await asyncio.wait([sending], timeout=0.5)
        await sending
        assert parts == [PARTITIONS]

        async def count() -> int:
            n: int = await db.fetchval(
                "SELECT count(*) FROM license_history WHERE customer_id = ANY($1)", ids
            )
            return n

        assert await eventually(count, lambda n: n >= RECORDS, timeout=180) == RECORDS
        await asyncio.sleep(3)
        assert await count() == RECORDS
        assert worker.proc.poll() is None, "the survivor stopped"
        stale = await assert_outcome(session, [worker], db, expected)
    print(f"SIGKILL: partitions taken over in {took_over:.1f}s, {RECORDS} records, {len(stale)} stale keys")
    assert_fresh(stale, "after a SIGKILL")
