"""Checks a command makes before it starts anything: ports free, broker reachable.

Each failure is a `CannotStart` whose one line says what to do; the CLI prints
it without a traceback. The checks race with other processes, so the start-up
itself still fails safely; they exist to turn the ordinary mistakes into a clear line.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from streamapp.errors import CannotStart
from streamapp.pipeline import Pipeline, discover_pipelines
from streamapp.settings import Settings

# How long one connection attempt to the broker may take, s.
CONNECT_TIMEOUT = 3.0


def port_free(host: str, port: int) -> bool:
    """Can we bind it? Without SO_REUSEPORT, so a port another stack's ingest tier shares is taken too."""
    if port == 0:
        return True
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise CannotStart(f"cannot bind {host}:{port}: {exc.strerror}") from None
    return True


def check_ports(ports: Iterable[tuple[str, str, int]]) -> None:
    """(variable, host, port) each: raise for the first one taken."""
    for variable, host, port in ports:
        if not port_free(host, port):
            raise CannotStart(
                f"port {port} on {host} is taken ({variable}): stop what listens there, "
                f"or set {variable} to a free port"
            )


def server_ports(
    settings: Settings, *, ingest: bool, worker: bool, pipelines: Sequence[Pipeline] | None = None
) -> list[tuple[str, str, int]]:
    """The ports a worker / an ingest process will listen on (a worker's: the pipelines' too)."""
    ports: list[tuple[str, str, int]] = []
    if worker:
        ports.append(("STREAMAPP_WEB_PORT", settings.web_bind, settings.web_port))
        for pipeline in discover_pipelines() if pipelines is None else pipelines:
            if pipeline.ports is not None:
                ports += [(p.variable, p.host, p.port) for p in pipeline.ports(settings)]
    if ingest:
        ports.append(("STREAMAPP_INGEST_PORT", settings.web_bind, settings.ingest_port))
    return ports


def broker_addresses(url: str) -> list[tuple[str, int]]:
    """`kafka://h1:9092;h2:9092` (Faust's form) or `h1:9092,h2:9092` -> [(host, port)]."""
    addresses = []
    for part in url.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        parsed = urlsplit(part if "://" in part else f"kafka://{part}")
        addresses.append((parsed.hostname or "localhost", parsed.port or 9092))
    return addresses


def check_broker(settings: Settings) -> None:
    """Some bootstrap address of the broker accepts a TCP connection."""
    if settings.broker_url is None:
        raise CannotStart(
            "no broker configured: run `streamapp services` (or `streamapp dev`) first, "
            "or set STREAMAPP_BROKER_URL"
        )
    problems = []
    for host, port in broker_addresses(settings.broker_url):
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                return
        except OSError as exc:
            problems.append(f"{host}:{port} ({exc.strerror or type(exc).__name__})")
    raise CannotStart(
        f"no broker reachable at {', '.join(problems)}: start it (`streamapp services`) "
        "or point STREAMAPP_BROKER_URL at a running one"
    )
