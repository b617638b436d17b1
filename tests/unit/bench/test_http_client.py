"""The load generator's HTTP client: it must count what the server really answered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench.http_client import Connection, ProtocolError
from streamapp.embedded import free_port


@pytest.fixture
async def server() -> AsyncIterator[str]:
    seen: list[tuple[str | None, bytes]] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.headers.get("Content-Type"), body))
        if body == b"close":
            return web.Response(status=503, body=b"bye", headers={"Connection": "close"})
        if body == b"chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"part")
            await response.write_eof()
            return response
        return web.json_response({"got": body.decode(), "n": len(seen)}, status=202)

    app = web.Application()
    app.router.add_post("/hook", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()
    # The simulator's wire format: no Content-Type header.
    assert all(content_type is None for content_type, _ in seen)


async def test_posts_on_one_connection_and_reads_each_whole_answer(server: str) -> None:
    connection = Connection(server, timeout=5)
    first = await connection.post(b"a" * 100_000)  # a body bigger than one read
    second = await connection.post(b"b")
    assert (first.status, second.status) == (202, 202)
    assert first.body == b'{"got": "' + b"a" * 100_000 + b'", "n": 1}'
    assert second.body == b'{"got": "b", "n": 2}'
    connection.close()


async def test_reconnects_after_the_server_closes(server: str) -> None:
    connection = Connection(server, timeout=5)
    answer = await connection.post(b"close")
    assert (answer.status, answer.body) == (503, b"bye")
    assert (await connection.post(b"again")).status == 202
    connection.close()


async def test_an_unframed_answer_is_an_error_not_a_success(server: str) -> None:
    connection = Connection(server, timeout=5)
    with pytest.raises(ProtocolError, match="chunked"):
        await connection.post(b"chunked")
    assert (await connection.post(b"next")).status == 202  # a fresh connection
    connection.close()


async def test_a_server_that_is_not_there() -> None:
    with pytest.raises(ConnectionRefusedError):
        await Connection(f"http://127.0.0.1:{free_port()}/hook", timeout=5).post(b"x")
    with pytest.raises(ValueError, match="http://"):
        Connection("https://example.com/hook", timeout=5)
