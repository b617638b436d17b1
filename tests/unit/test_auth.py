"""Principals: a kind and an id, compared together; reserved ids; who may call which route (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from streamapp.auth import Principal
from streamapp.errors import ValidationFailed
from streamapp.models.merchants import WebhookRegistration
from streamapp.web.base import db_call
from streamapp.web.deliveries import may_read
from tests.unit.webapp import PROD, bearer, served

OWNER_KINDS: dict[str, Any] = {"merchants": "client", "assistance": "bot"}


@pytest.mark.parametrize("client_id", ["assistance-bot", "admin", "Admin", "reader"])
def test_anyone_can_become_the_chat_bot_reserved_ids(client_id: str) -> None:
    """Finding 1: a merchant client could register as `assistance-bot`."""
    with pytest.raises(ValidationError, match="reserved"):
        WebhookRegistration.model_validate({"url": "https://example.com/hook", "client_id": client_id})


def test_anyone_can_become_the_chat_bot_kinds_compared() -> None:
    """Finding 1: a client whose id is the bot's owner string reads nothing of the bot's."""
    bot_delivery = {"pipeline": "assistance", "owner": "assistance-bot"}
    client_delivery = {"pipeline": "merchants", "owner": "acme"}
    impostor = Principal("client", "assistance-bot")
    assert not may_read(impostor, OWNER_KINDS, bot_delivery)
    assert may_read(Principal("bot", "assistance-bot"), OWNER_KINDS, bot_delivery)
    assert not may_read(Principal("bot", "acme"), OWNER_KINDS, client_delivery)
    assert may_read(Principal("client", "acme"), OWNER_KINDS, client_delivery)
    assert may_read(Principal("admin", "admin"), OWNER_KINDS, {"pipeline": "unknown", "owner": "x"})
    assert not may_read(Principal("client", "x"), OWNER_KINDS, {"pipeline": "unknown", "owner": "x"})


async def test_anyone_can_become_the_chat_bot_over_http() -> None:
    """Finding 1: registering the bot's id is refused before PostgreSQL is asked."""
    async with served(env="dev") as (_, client):
        answer = await client.post(
            "/create_webhook", json={"url": "https://example.com/h", "client_id": "assistance-bot"}
        )
        assert answer.status == 422
        assert (await answer.json())["error"] == "validation_failed"


READS = [
    "/licenses/c1",
    "/customers/c1/license-history",
    "/tasks/t1",
    "/tasks/t1/events",
    "/users/u1/tasks",
    "/reports/u1?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
    "/reports/u1/summary?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
]
ADMIN_ONLY = ["/tables/", "/tables/cart-totals/0b6f6b1e-3e0a-4d0c-9d7e-3f4f2f1a9a11", "/lag"]


async def test_reads_are_open() -> None:
    """Finding 2: reads answered without credentials; cart totals of any user via /tables."""
    async with served(**PROD) as (_, client):
        for path in READS + ADMIN_ONLY:
            for headers in ({}, bearer("wrong"), bearer("bot-token")):
                answer = await client.get(path, headers=headers)
                assert answer.status == 401, (path, headers)
                assert (await answer.json())["error"] == "unauthorized"
        for path in READS:  # past the door: no database here, so 503
            for token in ("read-token", "admin-token"):
                answer = await client.get(path, headers=bearer(token))
                assert answer.status == 503, (path, token)
        for path in ADMIN_ONLY:
            assert (await client.get(path, headers=bearer("read-token"))).status == 401, path


async def test_reads_stay_open_in_dev_without_tokens() -> None:
    async with served(env="dev") as (_, client):
        assert (await client.get("/licenses/c1")).status == 503  # past the door
        assert (await client.get("/tables/")).status == 200


async def test_create_webhook_is_open_outside_dev() -> None:
    """Finding 3: without STREAMAPP_ADMIN_TOKEN, /create_webhook was open in every env."""
    async with served(env="test") as (_, client):
        body = {"url": "https://example.com/h", "client_id": "c1"}
        answer = await client.post("/create_webhook", json=body)
        assert answer.status == 401


@pytest.mark.parametrize("path", ["/create_webhook", "/tasks/webhook", "/assistance", "/salesforce/webhook"])
async def test_deeply_nested_json_is_a_500(path: str) -> None:
    """Finding 8: `[` x 100,000 raised RecursionError (500, traceback), before auth."""
    async with served(env="dev") as (_, client):
        for body in (b"[" * 100_000, b'{"a":' * 100_000):
            answer = await client.post(path, data=body)
            assert answer.status == 400, path
            assert (await answer.json())["error"] == "malformed_body"


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/tasks/webhook", "X-Webhook-Secret"),
        ("/salesforce/webhook", "X-Webhook-Secret"),
        ("/licenses/c1", "Authorization"),
        ("/assistance/x", "Authorization"),
        ("/admin/assistance/routing", "Authorization"),
        ("/normalize_merchant", "client-id"),  # found by probing after the fuzz campaign
        ("/normalize_merchant/x", "client-id"),
    ],
)
async def test_non_utf8_secret_header_is_a_500(path: str, header: str) -> None:
    """Finding 9: a non-UTF-8 byte in a credential header raised UnicodeEncodeError (500)."""
    async with served(**PROD) as (_, client):
        value = b"Bearer t\xff" if header == "Authorization" else b"t\xff"
        # aiohttp's client refuses to send such a header: write the request by hand.
        method = "POST" if path.endswith(("webhook", "merchant")) else "GET"
        reader, writer = await _open(client)
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n".encode()
            + header.encode()
            + b": "
            + value
            + b"\r\n\r\n{}"
        )
        status_line = await reader.readline()
        writer.close()
        assert status_line.split()[1] == b"401", (path, status_line)


async def _open(client: Any) -> Any:
    import asyncio

    return await asyncio.open_connection(client.host, client.port)


async def test_table_route_without_partitions_is_a_500() -> None:
    """Found by the fuzz campaign: routing a table key before the producer knows the changelog
    topic (or holds partitions) raised inside Faust (500); it is a 503, to be retried."""
    async with served(**PROD) as (_, client):
        answer = await client.get("/tables/license-state/c1", headers=bearer("admin-token"))
        assert answer.status == 503
        assert (await answer.json())["error"] == "dependency_unavailable"


class RefusedValue(Exception):
    """What asyncpg raises for NUL in a text parameter: CharacterNotInRepertoireError, 22021."""

    sqlstate = "22021"


async def test_nul_in_a_read_path_is_a_500() -> None:
    """Found after the fuzz campaign: `GET /licenses/a%00b` (and every read by a text id, and
    /create_webhook with NUL in the URL) was a 500: PostgreSQL refuses NUL in text (22021)."""

    async def refused() -> None:
        raise RefusedValue("invalid byte sequence for encoding UTF8: 0x00")

    with pytest.raises(ValidationFailed, match="22021"):
        await db_call(refused)

    async def bug() -> None:
        raise KeyError("a bug stays a bug")

    with pytest.raises(KeyError):
        await db_call(bug)
