"""`streamapp dev --simulate`: one command runs it all, drives all five systems; Ctrl-C leaves nothing.

One start for every check (a dev stack costs tens of seconds on a shared machine).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import aiohttp
import psutil

from tests.integration.devstack import DevStack

# Each pipeline's tables, with the condition that says the simulator's events got through.
ROWS = {
    "licenses": "SELECT count(*) FROM license_history",
    "tasks": "SELECT count(*) FROM task_events",
    "merchants": "SELECT count(*) FROM merchant_requests WHERE status = 'done'",
    "assistance": "SELECT count(*) FROM assistance_requests",
    "carts": "SELECT count(*) FROM cart_entries",
    "deliveries": "SELECT count(*) FROM deliveries WHERE status = 'succeeded'",
}


def terminal_lines_only(output: str) -> bool:
    """The terminal shows the banner, the simulator's progress and the stop's steps: no log lines."""
    return all(
        line.startswith(("streamapp ", "  ", "simulator ", "streamapp dev [")) or not line.strip()
        for line in output.splitlines()
    )


def banner_urls(output: str) -> list[str]:
    block = output.split("dev is ready", 1)[1].split("  stop ", 1)[0]
    return [url for url in re.findall(r"http://[^\s<]+", block) if "<" not in url]


async def test_dev_simulates_every_system_and_stops_cleanly(tmp_path: Path) -> None:
    stack = DevStack(tmp_path / "data", STREAMAPP_INGEST_PROCESSES="2", STREAMAPP_APP_ID="devtest")
    try:
        await stack.start("--simulate", "--rate", "4/s", "--seed", "1")
        deadline = time.monotonic() + 120
        while "dev is ready" not in stack.output() and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        output = stack.output()
        assert "dev is ready" in output, output
        urls = banner_urls(output)
        worker = f"{stack.worker_url}/"
        assert worker in urls, urls
        assert f"{stack.worker_url}/docs" in urls, urls
        standins = next(u for u in urls if not u.startswith((stack.worker_url, stack.ingest_url)))
        # Logs went to the data dir's file, not to the terminal.
        log_file = stack.data_dir / "streamapp.log"
        assert "STREAMAPP_SERVICES_READY" in log_file.read_text(errors="replace")
        assert terminal_lines_only(output), output

        async with aiohttp.ClientSession() as session:
            # Every address the banner prints answers; webhooks are POST-only (a JSON 405 to GET).
            for url in urls:
                async with session.get(url) as response:
                    assert response.status < 500, (url, response.status)
            for page in (worker, f"{stack.worker_url}/docs"):
                async with session.get(page) as response:
                    assert response.status == 200, (page, response.status)

            async def counts() -> dict[str, int]:
                return {name: (await stack.fetch(sql))[0][0] for name, sql in ROWS.items()}

            async def inbox() -> dict[str, int]:
                async with session.get(standins) as response:
                    counts: dict[str, int] = (await response.json())["counts"]
                    return counts

            found: dict[str, int] = {}
            delivered: dict[str, int] = {}
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                found, delivered = await counts(), await inbox()
                if min(found.values()) > 0 and delivered["slack"] > 0 and delivered["email"] > 0:
                    break
                await asyncio.sleep(2)
            assert min(found.values()) > 0, found
            assert delivered["slack"] > 0, delivered
            assert delivered["email"] > 0, delivered
        # The simulator's merchant receiver checked signatures on what it got.
        progress = [line for line in stack.output().splitlines() if line.startswith("simulator ")]
        assert progress
        assert "BAD SIGNATURES" not in progress[-1]
        # Assistance found its routes (stand-ins), so it never logged an ERROR.
        assert "ERROR] streamapp.assistance" not in log_file.read_text(errors="replace")

        descendants = psutil.Process(stack.proc.pid).children(recursive=True)  # type: ignore[union-attr]
        ingest = [p for p in descendants if "streamapp ingest" in " ".join(p.cmdline())]
        assert len(ingest) == 2, [p.cmdline() for p in descendants]  # STREAMAPP_INGEST_PROCESSES
        # The worker (the dev process itself) yields the CPU to the webhooks; the ingest
        # processes keep ours.
        assert stack.proc is not None
        assert psutil.Process(stack.proc.pid).nice() == min(19, os.nice(0) + 10)  # STREAMAPP_WORKER_NICE
        assert os.sched_getscheduler(stack.proc.pid) == os.SCHED_BATCH
        assert {p.nice() for p in ingest} == {os.nice(0)}
        stack.descendants = descendants

        code, _ = await stack.interrupt()
        assert code == 0, stack.output()[-3000:]
        await asyncio.sleep(1)
        assert stack.left_behind() == []
        assert not (stack.data_dir / "services.env").exists()
        assert terminal_lines_only(stack.output()), stack.output()
        final = [line for line in stack.output().splitlines() if line.startswith("simulator ")][-1]
        signed = int(re.search(r"signed results (\d+)", final).group(1))  # type: ignore[union-attr]
        assert signed > 0, final
        assert re.search(r"carts \d+ \[OK:\d+", final), final
    finally:
        stack.kill()
