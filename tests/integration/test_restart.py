"""`streamapp dev` stopped with Ctrl-C (SIGINT to its process group) and started again: nothing lost.

The embedded broker keeps topics in memory only, so after a restart every
changelog is empty: table state must come back from the local store, and what
was accepted before the stop must have been processed before the broker went.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.devstack import DevStack
from tests.integration.stack import customer_record, eventually


async def stops_cleanly(dev: DevStack, within: float = 45.0) -> None:
    """Exit 0, no traceback, nothing left running; `within` s (a drain may take up to 30 s)."""
    code, took = await dev.interrupt()
    output = dev.output() + dev.logs()
    assert code == 0, output[-3000:]
    assert took < within, (took, output[-3000:])
    assert "Traceback" not in output, output[-5000:]
    # Children (the multiprocessing resource tracker among them) exit just after `dev` does:
    # give them a few seconds under load, then nothing may be left.
    deadline = time.monotonic() + 10
    while dev.left_behind() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert dev.left_behind() == []


async def post_json(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    async with session.post(url, json=body) as response:
        await response.read()
        return response.status


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        body = await response.json(content_type=None) if response.status < 500 else None
        return response.status, body


async def active_skus(session: aiohttp.ClientSession, dev: DevStack, customer: str) -> set[str]:
    status, body = await get_json(session, f"{dev.worker_url}/licenses/{customer}")
    if status != 200:
        return set()
    return {row["sku"] for row in body["licenses"] if row["active"]}


async def test_revoke_after_a_restart_revokes(tmp_path: Path) -> None:
    dev = DevStack(tmp_path / "data")
    customer = str(uuid.uuid4())
    try:
        await dev.start()
        async with aiohttp.ClientSession() as session:
            webhook = f"{dev.ingest_url}/salesforce/webhook"
            first = customer_record(Id=customer, SKU1=True, SKU2=True)
            assert await post_json(session, webhook, first) == 202
            granted = await eventually(
                lambda: active_skus(session, dev, customer), lambda s: s == {"SKU1", "SKU2"}, timeout=60
            )
            assert granted == {"SKU1", "SKU2"}
        await stops_cleanly(dev)

        await dev.start()
        async with aiohttp.ClientSession() as session:
            record = customer_record(Id=customer, SKU1=False, SKU2=True)
            assert await post_json(session, f"{dev.ingest_url}/salesforce/webhook", record) == 202
            left = await eventually(
                lambda: active_skus(session, dev, customer), lambda s: s == {"SKU2"}, timeout=60
            )
            assert left == {"SKU2"}

            async def licensed_in_table() -> list[str]:
                # The agent writes PostgreSQL first and the table last: poll until it has.
                status, state = await get_json(session, f"{dev.worker_url}/tables/license-state/{customer}")
                return sorted(state["value"]["licensed"]) if status == 200 else []

            in_table = await eventually(licensed_in_table, lambda skus: skus == ["SKU2"], timeout=30)
        rows = await dev.fetch("SELECT sku FROM licenses WHERE customer_id = $1 AND active", customer)
        assert in_table == sorted(row["sku"] for row in rows) == ["SKU2"]
        # The stop recorded how far the changelogs went; the new broker's are empty, so
        # the worker wrote its local state back to them (for whoever takes a partition over).
        assert "keys back to the changelog" in dev.logs()
        await stops_cleanly(dev)
    finally:
        dev.kill()


async def test_everything_accepted_before_ctrl_c_is_in_postgres_once(tmp_path: Path) -> None:
    dev = DevStack(tmp_path / "data")
    customers = [str(uuid.uuid4()) for _ in range(2000)]
    try:
        await dev.start()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
            webhook = f"{dev.ingest_url}/salesforce/webhook"
            statuses = await asyncio.gather(
                *(post_json(session, webhook, customer_record(Id=c, SKU1=True)) for c in customers)
            )
        assert statuses == [202] * len(customers)
        # Ctrl-C right after the last 202: the backlog is still in the (memory-only) topics.
        code, _ = await dev.interrupt()
        assert code == 0, (dev.output() + dev.logs())[-3000:]
        assert "Traceback" not in (dev.output() + dev.logs())

        await dev.start()

        async def history() -> list[Any]:
            return await dev.fetch(
                "SELECT customer_id, count(*) AS n FROM license_history"
                " WHERE customer_id = ANY($1::text[]) GROUP BY customer_id",
                customers,
            )

        rows = await eventually(history, lambda r: len(r) == len(customers), timeout=30)
        assert len(rows) == len(customers)
        assert {row["n"] for row in rows} == {1}
        active = await dev.fetch(
            "SELECT count(*) AS n FROM licenses"
            " WHERE customer_id = ANY($1::text[]) AND sku = 'SKU1' AND active",
            customers,
        )
        assert active[0]["n"] == len(customers)
        await stops_cleanly(dev)
    finally:
        dev.kill()


async def test_ctrl_c_stops_everything_fast_and_quietly(tmp_path: Path) -> None:
    dev = DevStack(tmp_path / "data")
    try:
        await dev.start("--simulate", "--systems", "salesforce", "--rate", "200", "--seed", "3")
        async with aiohttp.ClientSession() as session:

            async def customers_seen() -> int:
                status, body = await get_json(session, f"{dev.worker_url}/tables/")
                return sum(t["local_keys"] for t in body["tables"]) if status == 200 else 0

            assert await eventually(customers_seen, lambda n: n > 0, timeout=60) > 0
        await stops_cleanly(dev, within=15.0)
        assert not (dev.data_dir / "services.env").exists()
    finally:
        dev.kill()


def task_hook(event: str, at: datetime, user: str, task: str, done: bool = False) -> dict[str, Any]:
    return {
        "event": event,
        "timestamp": at.isoformat(),
        "metadata": {"userId": user, "id": task, "content": "water the plants", "isCompleted": done},
    }


async def test_task_update_after_a_restart_applies(tmp_path: Path) -> None:
    dev = DevStack(tmp_path / "data")
    user, task = f"u-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    created = datetime.now(UTC) - timedelta(seconds=30)
    try:
        await dev.start()
        async with aiohttp.ClientSession() as session:

            async def task_now() -> dict[str, Any]:
                status, body = await get_json(session, f"{dev.worker_url}/tasks/{task}")
                return body if status == 200 else {}

            webhook = f"{dev.ingest_url}/tasks/webhook"
            assert await post_json(session, webhook, task_hook("created", created, user, task)) == 202
            seen = await eventually(task_now, lambda t: t.get("status") == "open", timeout=60)
            assert seen.get("status") == "open", seen
        await stops_cleanly(dev)

        await dev.start()
        async with aiohttp.ClientSession() as session:
            done = task_hook("updated", created + timedelta(seconds=5), user, task, done=True)
            assert await post_json(session, f"{dev.ingest_url}/tasks/webhook", done) == 202
            now = await eventually(task_now, lambda t: t.get("status") == "completed", timeout=60)
            assert now.get("status") == "completed", now

            async def facts_in_table() -> list[str]:
                # PostgreSQL first, the table last: poll until the table has the update too.
                status, facts = await get_json(session, f"{dev.worker_url}/tables/task-events/{task}")
                return sorted(f["event_id"] for f in facts["value"]) if status == 200 else []

            in_table = await eventually(facts_in_table, lambda ids: len(ids) == 2, timeout=30)
        applied = await dev.fetch(
            "SELECT event_id::text AS id FROM task_events WHERE task_id = $1 AND status = 'applied'", task
        )
        assert in_table == sorted(row["id"] for row in applied)
        assert len(applied) == 2
        await stops_cleanly(dev)
    finally:
        dev.kill()


async def test_rebuild_state_from_postgres_when_store_and_changelog_are_gone(tmp_path: Path) -> None:
    dev = DevStack(tmp_path / "data")
    customer = str(uuid.uuid4())
    user, task = f"u-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    created = datetime.now(UTC) - timedelta(seconds=30)
    try:
        await dev.start()
        async with aiohttp.ClientSession() as session:
            first = customer_record(Id=customer, SKU1=True, SKU2=True)
            assert await post_json(session, f"{dev.ingest_url}/salesforce/webhook", first) == 202
            hook = task_hook("created", created, user, task)
            assert await post_json(session, f"{dev.ingest_url}/tasks/webhook", hook) == 202
            granted = await eventually(
                lambda: active_skus(session, dev, customer), lambda s: s == {"SKU1", "SKU2"}, timeout=60
            )
            assert granted == {"SKU1", "SKU2"}

            async def task_status() -> Any:
                status, body = await get_json(session, f"{dev.worker_url}/tasks/{task}")
                return body.get("status") if status == 200 else None

            assert await eventually(task_status, lambda s: s == "open", timeout=60) == "open"
        await stops_cleanly(dev)

        # Both copies of the state gone: the broker's (memory) and the local store.
        shutil.rmtree(dev.data_dir / "state")
        for pipeline in ("licenses", "tasks"):
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "streamapp", "rebuild-state", pipeline],
                env=dev.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert "1 keys rebuilt" in done.stdout, done.stdout

        await dev.start()
        async with aiohttp.ClientSession() as session:
            revoke = customer_record(Id=customer, SKU1=False, SKU2=True)
            assert await post_json(session, f"{dev.ingest_url}/salesforce/webhook", revoke) == 202
            done_hook = task_hook("updated", created + timedelta(seconds=5), user, task, done=True)
            assert await post_json(session, f"{dev.ingest_url}/tasks/webhook", done_hook) == 202
            left = await eventually(
                lambda: active_skus(session, dev, customer), lambda s: s == {"SKU2"}, timeout=60
            )
            assert left == {"SKU2"}
            assert await eventually(task_status, lambda s: s == "completed", timeout=60) == "completed"
        # The rebuilt partitions were written back to the (empty) changelogs at start.
        assert "writing its" in dev.logs()
        await stops_cleanly(dev)
    finally:
        dev.kill()
