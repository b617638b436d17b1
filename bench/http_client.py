"""A minimal keep-alive HTTP/1.1 client for the load generator.

aiohttp's client spends ~230 us of CPU per request (measured: the loadgen used
45% of a core at 1,900 req/s), which on a 2-core machine takes CPU from the
server being measured. A load generator only needs to send a POST and read a
response framed by Content-Length on a connection it keeps open, which costs a
small fraction of that. Anything it does not understand (chunked bodies, a
malformed status line) is an error counted as such, never a guessed success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server's answer is not an HTTP/1.1 response this client can frame."""


class Response:
    """Status and body of one answer."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class _Protocol(asyncio.Protocol):
    """Feeds received bytes to the one request in flight (HTTP/1.1 without pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            response = self._parse()
        except ProtocolError as exc:
            self.waiter.set_exception(exc)
            return
        if response is not None:
            self.waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("the server closed the connection"))

    def _parse(self) -> Response | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        length: int | None = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise ProtocolError("chunked responses are not supported")
            elif name == b"connection" and value.strip().lower() == b"close":
                self.close_after = True
        if length is None:
            raise ProtocolError("the response has no Content-Length")
        total = end + 4 + length
        if len(self.buffer) < total:
            return None
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        return Response(int(parts[1]), body)


class Connection:
    """One client's connection to `url`'s host; (re)opened on demand."""

    def __init__(self, url: str, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported: {url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}".encode()
        self._protocol: _Protocol | None = None

    async def post(self, body: bytes) -> Response:
        """POST `body` with no Content-Type header (the simulator's wire format)."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            self._protocol = protocol
        assert protocol.transport is not None
        protocol.waiter = asyncio.get_running_loop().create_future()
        protocol.transport.write(self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        try:
            async with asyncio.timeout(self.timeout):
                response = await protocol.waiter
        except BaseException:
            self.close()  # the connection's state is unknown: never reuse it
            raise
        if protocol.close_after:
            self.close()
        return response

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
