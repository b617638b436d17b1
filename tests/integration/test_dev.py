"""`streamapp dev --simulate`: one command runs everything, and SIGTERM leaves no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import psutil

from streamapp.embedded import free_port
from tests.integration.stack import eventually


async def test_dev_runs_the_stack_and_stops_cleanly(tmp_path: Path) -> None:
    web_port = free_port()
    ingest_port = free_port()
    env = {
        **os.environ,
        "STREAMAPP_DATA_DIR": str(tmp_path / "data"),
        "STREAMAPP_EMBEDDED_BROKER_PORT": str(free_port()),
        "STREAMAPP_WEB_PORT": str(web_port),
        # The simulator posts to the ingest process, the worker processes.
        "STREAMAPP_INGEST_PORT": str(ingest_port),
        # The carts gRPC server's default port (9111) may be taken by another run.
        "STREAMAPP_CARTS_GRPC_PORT": str(free_port()),
        "STREAMAPP_APP_ID": "devtest",
        "STREAMAPP_LOG_LEVEL": "WARNING",
    }
    env.pop("STREAMAPP_BROKER_URL", None)
    env.pop("STREAMAPP_DATABASE_URL", None)
    with (tmp_path / "dev.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamapp", "dev", "--simulate", "--", "--rate", "600", "--seed", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as session:

            async def customers_seen() -> int:
                try:
                    async with session.get(f"http://127.0.0.1:{web_port}/tables/") as response:
                        if response.status != 200:
                            return 0
                        body = await response.json()
                        return sum(t["local_keys"] for t in body["tables"])
                except aiohttp.ClientError:
                    return 0

            # The simulator's records reach the table: broker, ingest, worker and simulator all run.
            assert await eventually(customers_seen, lambda n: n > 0, timeout=120) > 0
            async with session.get(f"http://127.0.0.1:{ingest_port}/ready") as response:
                assert response.status == 200
        assert (tmp_path / "data" / "services.env").is_file()
        descendants = psutil.Process(proc.pid).children(recursive=True)
        names = {p.name() for p in descendants}
        assert any("tansu" in name for name in names), names
        ingest = [p for p in descendants if "streamapp ingest" in " ".join(p.cmdline())]
        assert len(ingest) == 2, [p.cmdline() for p in descendants]  # STREAMAPP_INGEST_PROCESSES
        # The worker (the dev process itself) yields the CPU to the webhooks; the
        # ingest processes keep ours.
        assert psutil.Process(proc.pid).nice() == min(19, os.nice(0) + 10)  # STREAMAPP_WORKER_NICE
        assert os.sched_getscheduler(proc.pid) == os.SCHED_BATCH
        assert {p.nice() for p in ingest} == {os.nice(0)}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0
    await asyncio.sleep(1)
    alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    # PostgreSQL was stopped too (pg_ctl daemonises it, so it is not a descendant).
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    assert not (tmp_path / "data" / "services.env").exists()
