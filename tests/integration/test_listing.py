"""List routes against the real worker: keyset pages that add up, who may read them, answers as documented."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamapp.web.paging import encode_cursor
from tests.conformance import mismatch
from tests.integration.conftest import ADMIN, RECEIVER_HOST, Client
from tests.integration.receiver import Receiver
from tests.integration.stack import customer_record, eventually
from tests.integration.test_merchants import NETFLIX, register
from tests.integration.test_tasks import hook, post


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver(RECEIVER_HOST)
    await recv.start()
    yield recv
    await recv.stop()


async def get(client: Client, route: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """GET that also checks the answer against /openapi.json (route: the path template)."""
    async with client.session.get(client.base + path, headers=headers) as answer:
        body = await answer.json()
        problem = mismatch(route, "GET", answer.status, answer.content_type, body)
        assert problem is None, problem
        return answer.status, body


ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def test_customers_a_page_at_a_time(client: Client) -> None:
    # Ids sharing a random prefix sort together: paging starts just before them.
    prefix = uuid.uuid4().hex[:8]
    ids = [f"{prefix}-0000-4000-8000-00000000000{n}" for n in (1, 2, 3)]
    for n, customer_id in enumerate(ids):
        record = customer_record(Id=customer_id, SKU2=n == 1)
        status, body, _ = await client.post("/salesforce/webhook", record)
        assert status == 202, body
    route = "/licenses"
    first_page = f"/licenses?limit=2&after={encode_cursor(prefix)}"
    status, page = await eventually(
        lambda: get(client, route, first_page, ADMIN_AUTH),
        lambda r: [c["customer_id"] for c in r[1]["customers"]] == ids[:2],
    )
    assert status == 200
    assert [c["customer_id"] for c in page["customers"]] == ids[:2]
    licensed = {lic["sku"] for lic in page["customers"][1]["licenses"] if lic["active"]}
    assert licensed == {"SKU1", "SKU2"}
    assert page["next"] is not None
    status, rest = await eventually(
        lambda: get(client, route, f"/licenses?limit=2&after={page['next']}", ADMIN_AUTH),
        lambda r: bool(r[1]["customers"]) and r[1]["customers"][0]["customer_id"] == ids[2],
    )
    assert rest["customers"][0]["customer_id"] == ids[2]
    assert rest["customers"][0]["name"] == "acme.example.com"


async def test_a_clients_requests_newest_first_only_to_itself(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/listing")
    other = await register(client, receiver, "/listing-other")
    accepted = []
    for n in range(3):
        status, body = await tenant.normalize({**NETFLIX, "description": f"Payment Netflix {n}"})
        assert status == 202, body
        accepted.append(body["request_id"])
    route = "/clients/{client_id}/requests"
    path = f"/clients/{tenant.client_id}/requests"
    status, page = await get(client, route, f"{path}?limit=2", tenant.auth)
    assert status == 200
    assert [r["request_id"] for r in page["requests"]] == accepted[:0:-1]  # newest first
    assert page["requests"][0]["transaction"]["description"] == "Payment Netflix 2"
    status, rest = await get(client, route, f"{path}?limit=2&after={page['next']}", tenant.auth)
    assert ([r["request_id"] for r in rest["requests"]], rest["next"]) == ([accepted[0]], None)
    # The admin reads any client's; another client finds nothing, without credentials nothing opens.
    status, everything = await get(client, route, path, ADMIN_AUTH)
    assert [r["request_id"] for r in everything["requests"]] == accepted[::-1]
    status, body = await get(client, route, path, other.auth)
    assert (status, body["error"]) == (404, "not_found")
    status, body = await get(client, route, path, {})
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = await get(client, route, "/clients/no-such-client/requests", ADMIN_AUTH)
    assert (status, body["error"]) == (404, "not_found")
    status, body = await get(client, route, f"{path}?status=lost", tenant.auth)
    assert (status, body["errors"][0]["field"]) == (422, "status")
    # Finished requests, by status.
    status, done = await eventually(
        lambda: get(client, route, f"{path}?status=done", tenant.auth),
        lambda r: len(r[1]["requests"]) == 3,
    )
    assert {r["merchant"]["name"] for r in done["requests"]} == {"Netflix"}


async def test_a_users_tasks_a_page_at_a_time(client: Client) -> None:
    user = f"lister-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) - timedelta(minutes=5)
    tasks = [f"{user}-task-{n}" for n in range(3)]
    for n, task in enumerate(tasks):
        status, body = await post(client, hook("created", start + timedelta(seconds=n), user, task))
        assert status == 202, body
    route = "/users/{user_id}/tasks"
    status, page = await eventually(
        lambda: get(client, route, f"/users/{user}/tasks?limit=2", ADMIN_AUTH),
        lambda r: r[1]["next"] is not None,
    )
    assert [t["id"] for t in page["tasks"]] == tasks[:2]  # by creation time
    status, rest = await eventually(
        lambda: get(client, route, f"/users/{user}/tasks?limit=2&after={page['next']}", ADMIN_AUTH),
        lambda r: len(r[1]["tasks"]) == 1,
    )
    assert ([t["id"] for t in rest["tasks"]], rest["next"]) == ([tasks[2]], None)
