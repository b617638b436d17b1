"""`streamapp dev` as a terminal runs it: a process group of its own, stopped by a signal to the group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from bench.stack import stop_orphan_postgres
from streamapp.embedded import free_port


class DevStack:
    """One data directory, started and stopped as often as a test likes, on the same ports."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.web_port = free_port()
        self.ingest_port = free_port()
        self.env = {
            **os.environ,
            "STREAMAPP_DATA_DIR": str(data_dir),
            "STREAMAPP_EMBEDDED_BROKER_PORT": str(free_port()),
            "STREAMAPP_WEB_PORT": str(self.web_port),
            "STREAMAPP_INGEST_PORT": str(self.ingest_port),
            "STREAMAPP_INGEST_PROCESSES": "1",
            "STREAMAPP_CARTS_GRPC_PORT": str(free_port()),
            "STREAMAPP_APP_ID": "restarttest",
            "STREAMAPP_LOG_LEVEL": "WARNING",
            **settings,
        }
        self.env.pop("STREAMAPP_BROKER_URL", None)
        self.env.pop("STREAMAPP_DATABASE_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.descendants: list[psutil.Process] = []

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"dev-{self.starts}.log"

    async def start(self, *args: str, timeout: float = 180.0) -> None:
        self.starts += 1
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # A session and process group of its own, like a shell's foreground job:
            # the test then signals the whole group, as a terminal's Ctrl-C does.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamapp", "dev", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    said = self.output()[-1000:] + self.logs()[-3000:]
                    raise RuntimeError(f"dev exited with {self.proc.returncode}: {said}")
                ready = 0
                for url in (self.worker_url, self.ingest_url):
                    try:
                        async with session.get(f"{url}/ready") as response:
                            ready += response.status == 200
                    except aiohttp.ClientError:
                        pass
                if ready == 2:
                    self.descendants = psutil.Process(self.proc.pid).children(recursive=True)
                    return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"dev did not become ready: {self.output()[-1000:]}{self.logs()[-3000:]}")

    def output(self) -> str:
        """What `dev` wrote to the terminal: the banner, the simulator's progress, the stop's steps."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logs(self) -> str:
        """This start's log lines, which `dev` appends to a file in the data dir (not the terminal)."""
        path = self.data_dir / "streamapp.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        marker = "--- streamapp dev starting at"
        return marker + text.rsplit(marker, 1)[1] if marker in text else text

    async def interrupt(
        self, sig: signal.Signals = signal.SIGINT, timeout: float = 60.0
    ) -> tuple[int, float]:
        """Send `sig` to the whole process group; return the exit code and how long the stop took."""
        assert self.proc is not None
        began = time.monotonic()
        os.killpg(self.proc.pid, sig)
        try:
            code = await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise
        return code, time.monotonic() - began

    def left_behind(self) -> list[str]:
        found = []
        for proc in self.descendants:
            # A child may exit (or turn zombie) between any two of these calls: that is "gone".
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(" ".join(proc.cmdline()))
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        if (self.data_dir / "pgdata" / "postmaster.pid").exists():
            found.append("PostgreSQL (postmaster.pid still there)")
        return found

    def kill(self) -> None:
        """Last resort for a failed test: nothing of this stack may outlive it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for proc in self.descendants:
            if proc.is_running():
                proc.kill()
        # pg_ctl daemonises PostgreSQL out of the process group: a killed `dev` leaves it.
        stop_orphan_postgres(self.data_dir / "pgdata")

    def database_url(self) -> str:
        for line in (self.data_dir / "services.env").read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "STREAMAPP_DATABASE_URL":
                return value
        raise KeyError("STREAMAPP_DATABASE_URL")

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url())
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        finally:
            await conn.close()
