"""SIGKILL the worker while 5,000 records stream in: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import aiohttp
import asyncpg

from bench.procstat import alive
from simulator.records import Population
from tests.integration.conftest import SECRET
from tests.integration.stack import Worker, eventually

RECORDS = 5000
SENDERS = 32


async def send_until_accepted(session: aiohttp.ClientSession, worker: Worker, body: bytes, key: str) -> None:
    """An at-least-once sender: retry until the worker says 202 (it may be dead for a while)."""
    while True:
        try:
            async with session.post(
                f"{worker.url}/salesforce/webhook",
                data=body,
                headers={"X-Webhook-Secret": SECRET, "Idempotency-Key": key},
                skip_auto_headers=["Content-Type"],
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                await response.read()
                if response.status == 202:
                    return
                assert response.status >= 500, response.status
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.2)


async def test_sigkill_mid_stream_loses_and_doubles_nothing(worker: Worker, db: asyncpg.Pool) -> None:
    await worker.restart()  # keep the coverage of what it ran so far
    population = Population(400, seed=random.randrange(2**32))
    # Every record flips one SKU of a customer whose TOS is signed: exactly one
    # license change, so exactly one history line each.
    plan = [
        (c.id, json.dumps(c.record()).encode())
        for c in (population.license_changing() for _ in range(RECORDS))
    ]
    expected = {c.id: c.licensed() for c in population.customers}
    ids = list(expected)
    # Records of one customer go through one sender, in order (per-key ordering is the contract).
    lanes: list[list[tuple[str, bytes]]] = [[] for _ in range(SENDERS)]
    for cid, body in plan:
        lanes[hash(cid) % SENDERS].append((cid, body))
    accepted = 0

    async def lane(items: list[tuple[str, bytes]], session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for _cid, body in items:
            await send_until_accepted(session, worker, body, str(uuid.uuid4()))
            accepted += 1

    async with aiohttp.ClientSession() as session:
        senders = [asyncio.create_task(lane(items, session)) for items in lanes]
        while accepted < RECORDS * 0.3:
            await asyncio.sleep(0.05)
        orphans = worker.kill()  # SIGKILL: no flush, no commit
        killed_at = accepted
        await asyncio.sleep(1.0)
        worker.start()
        await asyncio.gather(*senders)
    assert 0 < killed_at < RECORDS
    assert orphans, "the worker runs a heuristic pool: it had child processes"
    # Its forkserver and pool processes go with it rather than live on as orphans.
    left = await eventually(lambda: asyncio.sleep(0, alive(orphans)), lambda pids: not pids, timeout=15)
    assert left == set()
    await worker.wait_ready()

    async def count() -> int:
        n: int = await db.fetchval("SELECT count(*) FROM license_history WHERE customer_id = ANY($1)", ids)
        return n

    assert await eventually(count, lambda n: n >= RECORDS, timeout=180) == RECORDS
    # Let any replayed duplicates arrive, then check again: still exactly one line per record.
    await asyncio.sleep(3)
    assert await count() == RECORDS
    rows = await db.fetch("SELECT customer_id, sku FROM licenses WHERE active AND customer_id = ANY($1)", ids)
    actual: dict[str, set[str]] = {cid: set() for cid in ids}
    for row in rows:
        actual[row["customer_id"]].add(row["sku"])
    assert actual == {cid: set(skus) for cid, skus in expected.items()}
