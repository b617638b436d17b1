"""More than one worker in one consumer group on the embedded broker: partitions shared, taken over, given back."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from streamapp.embedded import free_port
from tests.integration.conftest import SECRET
from tests.integration.stack import Worker, customer_record, eventually

PARTITIONS = set(range(4))  # STREAMAPP_TOPIC_PARTITIONS in the test stack
TABLE = "license-state"


async def local_partitions(session: aiohttp.ClientSession, worker: Worker) -> set[int]:
    try:
        async with session.get(f"{worker.url}/tables/") as response:
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
) -> None:
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
        async with session.get(f"{worker.url}/tables/{TABLE}/{cid}") as response:
            return response.status, await response.json()

    # Any worker answers for any key: the owner's, routed between workers.
    for cid, skus in expected.items():
        for worker in workers:
            status, body = await eventually(lambda w=worker, c=cid: table_value(w, c), lambda r: r[0] == 200)
            assert status == 200, body
            assert set(body["value"]["licensed"]) == skus, (worker.url, cid, body)


@pytest.fixture
async def second(worker: Worker, tmp_path: Path) -> Any:
    """Another worker of the same app (the session worker's settings, its own ports)."""
    extra = Worker(
        worker.services,
        tmp_path,
        **{**worker.settings, "STREAMAPP_CARTS_GRPC_PORT": str(free_port())},
    )
    extra.start()
    yield extra
    extra.stop()


async def test_workers_share_take_over_and_give_back(worker: Worker, second: Worker, db: asyncpg.Pool) -> None:
    await second.wait_ready()
    async with aiohttp.ClientSession() as session:
        parts = await eventually(lambda: assignment(session, [worker, second]), shared, timeout=90)
        assert shared(parts), parts
        expected = await post_records(session, [worker, second], 60)
        await assert_outcome(session, [worker, second], db, expected)

        # A graceful stop: the survivor takes every partition over.
        stopped = time.monotonic()
        second.stop()
        parts = await eventually(
            lambda: assignment(session, [worker]), lambda p: p[0] == PARTITIONS, timeout=90
        )
        took_over = time.monotonic() - stopped
        assert parts == [PARTITIONS]
        more = await post_records(session, [worker], 30)
        await assert_outcome(session, [worker], db, {**expected, **more})

        # And back: a new worker joins and gets its share.
        second.start()
        await second.wait_ready()
        parts = await eventually(lambda: assignment(session, [worker, second]), shared, timeout=90)
        assert shared(parts), parts
        rest = await post_records(session, [worker, second], 30)
        await assert_outcome(session, [worker, second], db, {**expected, **more, **rest})
    print(f"graceful stop: partitions taken over in {took_over:.1f}s")
