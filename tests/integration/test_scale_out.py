"""Three workers in one consumer group on the embedded broker: partitions shared, taken over, given back.

One test, phases in order, one stack: every worker start costs half a session
timeout (Tansu answers JoinGroup only then), and each phase starts from the
group the last one left. The workers run on a broker of their own with 6
partitions per topic (the session's has 4): Faust's sticky assignor gives a
worker ceil(partitions / workers) at most and moves nothing below that, so with
4 partitions a third worker joining two that hold 2/2 got none (2/2/0, measured
with bench/scale_out.py). 6 divides evenly among 1, 2 and 3 workers.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from simulator.records import Population
from streamapp.embedded import EmbeddedBroker, free_port
from tests.integration.conftest import ADMIN_AUTH, SECRET
from tests.integration.stack import Worker, customer_record, eventually
from tests.integration.test_crash import RECORDS, SENDERS, send_until_accepted

PARTITIONS = set(range(6))  # STREAMAPP_TOPIC_PARTITIONS of these workers
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


async def taken_over(session: aiohttp.ClientSession, workers: list[Worker], since: float) -> float:
    """Seconds from `since` until `workers` share every partition again (asserted)."""
    parts = await eventually(lambda: assignment(session, workers), shared, timeout=120)
    assert shared(parts), parts
    return time.monotonic() - since


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
async def crew(worker: Worker, tmp_path: Path) -> AsyncIterator[Callable[[], Worker]]:
    """Starts workers of one app on a broker of their own (the session worker's settings otherwise,
    its PostgreSQL; own ports and data dirs)."""
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker.log")
    await broker.start()
    started: list[Worker] = []

    def another() -> Worker:
        extra = Worker(worker.services, tmp_path / f"worker-{len(started) + 1}")
        extra.log_dir.mkdir()
        extra.settings = {
            **worker.settings,
            "STREAMAPP_BROKER_URL": broker.url,
            "STREAMAPP_TOPIC_PARTITIONS": str(len(PARTITIONS)),
            "STREAMAPP_APP_ID": "streamapp-scale-out",
            "STREAMAPP_CARTS_GRPC_PORT": str(free_port()),
        }
        extra.start()
        started.append(extra)
        return extra

    yield another
    for extra in started:
        extra.stop()
    await broker.stop()


def stream_plan(customers: int) -> tuple[list[bytes], dict[str, set[str]]]:
    """RECORDS records, each changing one license of one of `customers`; and what they imply."""
    population = Population(customers, seed=random.randrange(2**32))
    plan = [json.dumps(population.license_changing().record()).encode() for _ in range(RECORDS)]
    return plan, {c.id: set(c.licensed()) for c in population.customers}


async def stream_while(
    session: aiohttp.ClientSession, plan: list[bytes], via: list[Worker], disturb: Callable[[], object]
) -> float:
    """Post `plan` through `via` (a customer's records in order, through one sender);
    call `disturb` once 30% are accepted; return when it was called."""
    lanes: list[list[bytes]] = [[] for _ in range(SENDERS)]
    for body in plan:
        lanes[hash(json.loads(body)["Id"]) % SENDERS].append(body)
    accepted = 0

    async def lane(items: list[bytes], target: Worker) -> None:
        nonlocal accepted
        for body in items:
            await send_until_accepted(session, target, body, str(uuid.uuid4()))
            accepted += 1

    senders = asyncio.gather(*(lane(items, via[i % len(via)]) for i, items in enumerate(lanes)))
    while accepted < len(plan) * 0.3:
        await asyncio.sleep(0.05)
    disturb()
    disturbed = time.monotonic()
    while not senders.done():
        # A survivor that dies (as Faust's ConsistencyError did on a too-small listed
        # end offset) must fail the test, not leave the senders retrying.
        for survivor in via:
            if survivor.proc is None or survivor.proc.poll() is not None:
                senders.cancel()
                pytest.fail(f"a survivor stopped; see {survivor.log_path}")
        await asyncio.wait([senders], timeout=0.5)
    await senders
    return disturbed


async def history_lines(db: asyncpg.Pool, ids: list[str]) -> int:
    n: int = await db.fetchval("SELECT count(*) FROM license_history WHERE customer_id = ANY($1)", ids)
    return n


async def test_three_workers_sigkill_graceful_stop_and_a_fourth(
    crew: Callable[[], Worker], db: asyncpg.Pool
) -> None:
    worker, second, third = crew(), crew(), crew()
    await asyncio.gather(worker.wait_ready(), second.wait_ready(), third.wait_ready())
    async with aiohttp.ClientSession() as session:
        # 1. Three workers share the six partitions; each answers every table key alike.
        trio = [worker, second, third]
        parts = await eventually(lambda: assignment(session, trio), shared, timeout=120)
        assert shared(parts), parts
        expected = await post_records(session, trio, 60)
        assert_fresh(await assert_outcome(session, trio, db, expected), "with three workers")

        # 2. SIGKILL one while RECORDS stream in through the other two: both keep
        # running, take its partitions over, and every record counts exactly once.
        plan, implied = stream_plan(300)
        pair = [worker, second]
        killed = await stream_while(session, plan, pair, third.kill)
        sigkill_takeover = await taken_over(session, pair, killed)
        ids = list(implied)
        assert (
            await eventually(lambda: history_lines(db, ids), lambda n: n >= RECORDS, timeout=180) == RECORDS
        )
        await asyncio.sleep(3)  # nothing counted twice arrives late
        assert await history_lines(db, ids) == RECORDS
        assert_fresh(await assert_outcome(session, pair, db, implied), "after a SIGKILL")
        print(
            f"SIGKILL of 1 of 3 workers: partitions taken over in {sigkill_takeover:.1f}s, {RECORDS} records"
        )

        # 3. A graceful stop: the last worker holds everything; then a fourth starts
        # and gets its share back (rebalance both ways).
        stopped = time.monotonic()
        second.stop()
        graceful_takeover = await taken_over(session, [worker], stopped)
        more = await post_records(session, [worker], 30)
        assert_fresh(
            await assert_outcome(session, [worker], db, {**expected, **more}), "after a graceful stop"
        )
        fourth = crew()
        joined = time.monotonic()
        await fourth.wait_ready()
        pair = [worker, fourth]
        join_rebalance = await taken_over(session, pair, joined)
        rest = await post_records(session, pair, 30)
        everything = {**expected, **more, **rest, **implied}
        assert_fresh(await assert_outcome(session, pair, db, everything), "after a fourth worker joined")
    print(
        f"graceful stop: taken over in {graceful_takeover:.1f}s; "
        f"a fourth worker holds its share {join_rebalance:.1f}s after its start"
    )
