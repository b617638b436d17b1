"""`/ready` during start-up, on a broker that has no topics yet: 200 only once the process can do its job.

Found (issue 14): `/ready` answered 200 on a broker TCP connection and a
database ping, seconds before the worker had joined its group and recovered its
tables; a webhook in that window made the broker auto-create `licenses.inbound`
with the broker's default partition count instead of STREAMAPP_TOPIC_PARTITIONS.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streamapp.deadletter_cli import bootstrap
from streamapp.embedded import EmbeddedBroker, free_port
from tests.integration.conftest import ADMIN_AUTH, SECRET
from tests.integration.stack import Services, Worker, customer_record, eventually

# Not the broker's default (Tansu creates 3 partitions for an auto-created topic):
# a topic the broker made on its own shows up with another count.
PARTITIONS = 5


@pytest.fixture
async def empty_broker(tmp_path: Path) -> AsyncIterator[str]:
    """A broker of our own: the session's has every topic created already."""
    broker = EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "broker.log")
    await broker.start()
    yield broker.url
    await broker.stop()


def declared_topics(services: Services, settings: dict[str, str]) -> list[str]:
    """Every topic the app declares, as `streamapp topics` lists them (no broker needed)."""
    listed = subprocess.run(
        [sys.executable, "-m", "streamapp", "topics"],
        env={**os.environ, **services.env, **settings},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line.split("\t")[0] for line in listed.stdout.splitlines()]


async def partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    # Only topics known to exist are described: describing a missing one could create it.
    present = [t for t in await admin.list_topics() if not t.startswith("__")]
    return {meta["topic"]: len(meta["partitions"]) for meta in await admin.describe_topics(present)}


class Observer:
    """Polls one process's /ready; records what was true the first time it answered 200."""

    def __init__(self, proc: Worker, admin: AIOKafkaAdminClient) -> None:
        self.proc = proc
        self.admin = admin
        self.not_ready: list[dict[str, Any]] = []
        self.first_ready: float | None = None
        self.topics_then: dict[str, int] = {}
        self.partitions_then: set[int] | None = None

    async def run(self, session: aiohttp.ClientSession) -> None:
        while self.first_ready is None:
            try:
                async with session.get(f"{self.proc.url}/ready") as response:
                    body = await response.json()
                    status = response.status
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                assert status == 503, (status, body)
                self.not_ready.append(body)
                await asyncio.sleep(0.05)
                continue
            self.first_ready = time.monotonic()
            self.topics_then = await partition_counts(self.admin)
            if self.proc.command == "worker":
                async with session.get(f"{self.proc.url}/tables/", headers=ADMIN_AUTH) as response:
                    tables = (await response.json())["tables"]
                state = next(t for t in tables if t["name"] == "license-state")
                self.partitions_then = set(state["local_partitions"])


async def test_ready_only_when_able_and_no_topic_auto_created(
    services: Services, worker: Worker, db: asyncpg.Pool, empty_broker: str, tmp_path: Path
) -> None:
    settings = {
        **worker.settings,
        "STREAMAPP_BROKER_URL": empty_broker,
        "STREAMAPP_TOPIC_PARTITIONS": str(PARTITIONS),
        "STREAMAPP_CARTS_GRPC_PORT": str(free_port()),
        # Another consumer group and changelogs than the session worker's (same PostgreSQL).
        "STREAMAPP_APP_ID": "streamapp-ready-test",
    }
    topics = declared_topics(services, settings)
    ingest = Worker(services, tmp_path, command="ingest", port=None, **settings)
    starting = Worker(services, tmp_path, port=None, **settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(empty_broker))
    await admin.start()
    accepted: list[str] = []
    answers: list[tuple[str, int, dict[str, Any], str | None]] = []

    async def post_until_both_ready(session: aiohttp.ClientSession) -> None:
        # A webhook every 50 ms to each process, from the moment they start.
        while not (observers[0].first_ready and observers[1].first_ready):
            for proc in (ingest, starting):
                record = customer_record(SKU1=True)
                try:
                    async with session.post(
                        f"{proc.url}/salesforce/webhook", json=record, headers={"X-Webhook-Secret": SECRET}
                    ) as response:
                        body = await response.json()
                        answers.append(
                            (proc.command, response.status, body, response.headers.get("Retry-After"))
                        )
                        if response.status == 202:
                            accepted.append(record["Id"])
                except aiohttp.ClientError:
                    pass  # not listening yet
            await asyncio.sleep(0.05)

    try:
        observers = [Observer(ingest, admin), Observer(starting, admin)]
        ingest.start()
        starting.start()
        async with aiohttp.ClientSession() as session:
            await asyncio.wait_for(
                asyncio.gather(post_until_both_ready(session), *(o.run(session) for o in observers)), 180
            )
            counts = await partition_counts(admin)

            async def landed() -> int:
                n: int = await db.fetchval(
                    "SELECT count(DISTINCT customer_id) FROM licenses WHERE customer_id = ANY($1)", accepted
                )
                return n

            # Nothing accepted is lost: every 202 ends up in PostgreSQL (the session
            # worker's database, processed by the worker started here).
            rows = await eventually(landed, lambda n: n >= len(accepted), timeout=90)
    finally:
        ingest.stop()
        starting.stop()
        await admin.close()

    # Not one topic created by the broker's auto-create: every one has the configured count.
    assert counts["licenses.inbound"] == PARTITIONS, counts
    assert {name: n for name, n in counts.items() if name in topics and n != PARTITIONS} == {}
    # The webhooks were posted during start-up, and each got 202 or a 503 to retry.
    assert any(status == 503 for _, status, _, _ in answers), answers[:5]
    for command, status, body, retry_after in answers:
        assert status in (202, 503), (command, status, body)
        if status == 503:
            assert body["error"] == "not_ready", body
            assert retry_after is not None
    # While not ready, it said what it was waiting for.
    assert all(
        body["status"] == "starting" and body["waiting_for"] for o in observers for body in o.not_ready
    )
    worker_ready, ingest_ready = observers[1], observers[0]
    # At the worker's first 200: its topics existed with the configured partitions, and it
    # held its partitions (group joined, assignment received, tables recovered).
    assert {t: worker_ready.topics_then.get(t) for t in topics} == dict.fromkeys(topics, PARTITIONS)
    assert worker_ready.partitions_then == set(range(PARTITIONS))
    # At the ingest process's first 200: the topics it writes existed with the configured partitions.
    assert ingest_ready.topics_then.get("licenses.inbound") == PARTITIONS
    assert accepted
    assert rows == len(accepted)
