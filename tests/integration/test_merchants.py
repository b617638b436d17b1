"""Merchant normalization end to end, with a real receiver that checks every signature."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from streamapp.deadletter_cli import read_dead_letters, replay_letters
from streamapp.settings import Settings
from tests.integration.conftest import ADMIN, RECEIVER_HOST, Client
from tests.integration.receiver import Receiver
from tests.integration.stack import Services, eventually
from tests.integration.test_dead_letters import args

NETFLIX = {"date": "2021-04-01", "description": "Payment Netflix APRIL***", "amount": 12.99}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver(RECEIVER_HOST)
    await recv.start()
    yield recv
    await recv.stop()


class Tenant:
    def __init__(self, client: Client, client_id: str, api_key: str, secret: str) -> None:
        self.client, self.client_id, self.api_key, self.secret = client, client_id, api_key, secret

    @property
    def auth(self) -> dict[str, str]:
        return {"client-id": self.client_id, "Authorization": f"Bearer {self.api_key}"}

    async def normalize(self, body: dict[str, Any] | bytes, **headers: str) -> tuple[int, Any]:
        status, payload, _ = await self.client.post(
            "/normalize_merchant", body, secret=None, headers={**self.auth, **headers}
        )
        return status, payload

    async def poll(self, request_id: str) -> tuple[int, Any]:
        async with self.client.session.get(
            f"{self.client.base}/normalize_merchant/{request_id}", headers=self.auth
        ) as response:
            return response.status, await response.json()

    async def deliveries(self, request_id: str) -> tuple[int, Any]:
        async with self.client.session.get(
            f"{self.client.base}/deliveries/{request_id}", headers=self.auth
        ) as response:
            return response.status, await response.json()


async def register(client: Client, receiver: Receiver, path: str) -> Tenant:
    client_id = f"c-{uuid.uuid4().hex[:10]}"
    status, body, _ = await client.post(
        "/create_webhook",
        {"url": receiver.url(path), "client_id": client_id},
        secret=None,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert status == 201, body
    receiver.secrets[path] = body["signing_secret"]
    return Tenant(client, client_id, body["api_key"], body["signing_secret"])


async def test_happy_path_signed_delivery_and_poll(
    client: Client, receiver: Receiver, db: asyncpg.Pool
) -> None:
    tenant = await register(client, receiver, "/ok")
    status, body = await tenant.normalize(NETFLIX)
    assert status == 202
    request_id = body["request_id"]
    got = await receiver.wait_for("/ok", 1)
    assert len(got) == 1
    assert got[0].signature_ok
    assert got[0].body == {"request_id": request_id, "status": "done", "merchant": {"name": "Netflix"}}
    assert got[0].headers["webhook-id"]
    status, polled = await eventually(lambda: tenant.poll(request_id), lambda r: r[1]["status"] == "done")
    assert polled == {"request_id": request_id, "status": "done", "merchant": {"name": "Netflix"}}
    status, history = await eventually(
        lambda: tenant.deliveries(request_id),
        lambda r: r[0] == 200 and r[1]["deliveries"][0]["status"] == "succeeded",
    )
    (delivery,) = history["deliveries"]
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert delivery["attempts"][0]["latency_ms"] >= 0
    # The amount is stored exactly as sent.
    stored = await db.fetchval(
        "SELECT transaction->>'amount' FROM merchant_requests WHERE request_id=$1", uuid.UUID(request_id)
    )
    assert stored == "12.99"


async def test_catalogue_and_unknown(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/cat")
    cases = {
        "UBER *TRIP HELP.UBER.COM": "Uber",
        "AMZN Mktp US*2K3": "Amazon",
        "SQ *BLUE BOTTLE": "Square merchant",
        "zzz": "n/a",
    }
    ids = {}
    for description, expected in cases.items():
        _, body = await tenant.normalize({"date": "2021-04-02", "description": description, "amount": "1.00"})
        ids[body["request_id"]] = expected
    got = await receiver.wait_for("/cat", len(cases))
    assert {r.body["request_id"]: r.body["merchant"]["name"] for r in got} == ids


async def test_amount_number_or_string_and_bad_bodies(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/amounts")
    for amount in (12.99, "12.99", 12, "0.10"):
        status, _ = await tenant.normalize({**NETFLIX, "amount": amount})
        assert status == 202
    for bad, field in (
        ({**NETFLIX, "amount": "twelve"}, "amount"),
        ({**NETFLIX, "amount": True}, "amount"),
        ({**NETFLIX, "amount": None}, "amount"),
        ({**NETFLIX, "amount": "NaN"}, "amount"),
        ({**NETFLIX, "date": "2021-13-01"}, "date"),
        ({k: v for k, v in NETFLIX.items() if k != "description"}, "description"),
        ({**NETFLIX, "description": "   "}, "description"),
    ):
        status, body = await tenant.normalize(bad)
        assert (status, body["error"]) == (422, "validation_failed"), bad
        assert field in {e["field"] for e in body["errors"]}
    for raw in (b"{nope", b"[1]", b""):
        status, body = await tenant.normalize(raw)
        assert (status, body["error"]) == (400, "malformed_body")


async def test_api_key_required(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/auth")
    for headers in (
        {},
        {"client-id": tenant.client_id},
        {"client-id": tenant.client_id, "Authorization": "Bearer wrong"},
        {"client-id": "nobody", "Authorization": f"Bearer {tenant.api_key}"},
    ):
        status, body, _ = await client.post("/normalize_merchant", NETFLIX, secret=None, headers=headers)
        assert (status, body["error"]) == (401, "unauthorized"), headers


async def test_registration_rules(client: Client, receiver: Receiver) -> None:
    body = {"url": receiver.url("/reg"), "client_id": f"c-{uuid.uuid4().hex[:8]}"}
    status, err, _ = await client.post("/create_webhook", body, secret=None)
    assert (status, err["error"]) == (401, "unauthorized")  # creating needs the admin token
    admin = {"Authorization": f"Bearer {ADMIN}"}
    status, first, _ = await client.post("/create_webhook", body, secret=None, headers=admin)
    assert status == 201
    assert first["api_key"].startswith("sk_")
    assert first["signing_secret"].startswith("whsec_")
    # Re-pointing needs the client's own key; the admin token is not it.
    moved = {**body, "url": receiver.url("/moved")}
    status, err, _ = await client.post("/create_webhook", moved, secret=None, headers=admin)
    assert (status, err["error"]) == (401, "unauthorized")
    status, second, _ = await client.post(
        "/create_webhook", moved, secret=None, headers={"Authorization": f"Bearer {first['api_key']}"}
    )
    assert status == 200
    assert "api_key" not in second  # shown once only
    assert second["signing_secret"] == first["signing_secret"]
    assert second["url"] == receiver.url("/moved")
    for bad in (
        {"url": "ftp://x/y", "client_id": "ok"},
        {"url": "not a url", "client_id": "ok"},
        {"url": receiver.url("/x"), "client_id": "has space"},
        {"client_id": "ok"},
    ):
        status, err, _ = await client.post("/create_webhook", bad, secret=None, headers=admin)
        assert (status, err["error"]) == (422, "validation_failed"), bad


async def test_idempotency_key(client: Client, receiver: Receiver, db: asyncpg.Pool) -> None:
    tenant = await register(client, receiver, "/idem")
    key = str(uuid.uuid4())
    first = await tenant.normalize(NETFLIX, **{"Idempotency-Key": key})
    second = await tenant.normalize(NETFLIX, **{"Idempotency-Key": key})
    assert first[0] == second[0] == 202
    assert first[1]["request_id"] == second[1]["request_id"]
    status, body = await tenant.normalize({**NETFLIX, "amount": 1}, **{"Idempotency-Key": key})
    assert (status, body["error"]) == (422, "idempotency_key_reused")
    await receiver.wait_for("/idem", 1)
    # Only one request row, one delivery: nothing ran twice.
    assert (
        await db.fetchval("SELECT count(*) FROM merchant_requests WHERE client_id=$1", tenant.client_id) == 1
    )
    third = await tenant.normalize(NETFLIX, **{"Idempotency-Key": key})
    assert third[1]["request_id"] == first[1]["request_id"]
    await receiver.wait_for("/idem", 2, timeout=2)
    assert len(receiver.received["/idem"]) == 1


async def test_result_cache(client: Client, receiver: Receiver, db: asyncpg.Pool) -> None:
    tenant = await register(client, receiver, "/cache")
    description = f"LYFT *RIDE {uuid.uuid4().hex[:6]}"
    tx = {"date": "2021-04-01", "description": description, "amount": "5"}
    _, first = await tenant.normalize(tx)
    await receiver.wait_for("/cache", 1)
    _, second = await tenant.normalize({**tx, "description": description.lower()})
    await receiver.wait_for("/cache", 2)
    # The results sink and the delivery run side by side: wait for both rows to be final.
    rows = await eventually(
        lambda: db.fetch(
            "SELECT request_id::text, cache_hit, merchant_name FROM merchant_requests"
            " WHERE client_id=$1 AND status = 'done'",
            tenant.client_id,
        ),
        lambda found: len(found) == 2,
    )
    by_id = {r["request_id"]: (r["cache_hit"], r["merchant_name"]) for r in rows}
    assert by_id[first["request_id"]] == (False, "Lyft")
    assert by_id[second["request_id"]] == (True, "Lyft")


async def test_tenant_isolation(client: Client, receiver: Receiver) -> None:
    alice = await register(client, receiver, "/alice")
    bob = await register(client, receiver, "/bob")
    _, body = await alice.normalize(NETFLIX)
    rid = body["request_id"]
    await receiver.wait_for("/alice", 1)
    status, err = await bob.poll(rid)
    assert (status, err["error"]) == (404, "not_found")
    status, err = await bob.deliveries(rid)
    assert (status, err["error"]) == (404, "not_found")
    assert (await alice.poll(rid))[0] == 200
    assert (await bob.poll("not-a-uuid"))[0] == 404
    async with client.session.get(
        f"{client.base}/deliveries/{rid}", headers={"Authorization": f"Bearer {ADMIN}"}
    ) as r:
        assert r.status == 200
    async with client.session.get(f"{client.base}/deliveries/{rid}") as r:
        assert r.status == 401


async def test_receiver_fails_twice_then_succeeds(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/flaky")
    receiver.scripts["/flaky"] = [500, 503, 200]
    _, body = await tenant.normalize(NETFLIX)
    got = await receiver.wait_for("/flaky", 3)
    assert len(got) == 3
    assert all(r.signature_ok for r in got)
    assert len({r.headers["webhook-id"] for r in got}) == 1  # same message id on every retry
    _, history = await eventually(
        lambda: tenant.deliveries(body["request_id"]),
        lambda r: r[0] == 200 and r[1]["deliveries"][0]["status"] == "succeeded",
    )
    attempts = history["deliveries"][0]["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert attempts[0]["error"].startswith("HTTP 500")
    assert len(attempts[0]["error"]) < 300  # the response body is capped, not stored whole


async def test_retry_after_is_honoured(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/limited")
    receiver.scripts["/limited"] = [429, 200]
    receiver.extra_headers["/limited"] = {"Retry-After": "2"}
    await tenant.normalize(NETFLIX)
    got = await receiver.wait_for("/limited", 2)
    assert len(got) == 2
    gap = float(got[1].headers["webhook-timestamp"]) - float(got[0].headers["webhook-timestamp"])
    assert gap >= 1  # the schedule alone would have retried after ~0.3 s


async def test_retry_after_overflow_records_the_attempt(client: Client, receiver: Receiver) -> None:
    """Finding 11: `Retry-After: 99999999999999999999` raised OverflowError after the attempt; it
    was never recorded and the delivery was claimed again every 10 minutes. Now: clamped to 24 h."""
    tenant = await register(client, receiver, "/huge")
    receiver.scripts["/huge"] = [503]
    receiver.extra_headers["/huge"] = {"Retry-After": "99999999999999999999"}
    _, accepted = await tenant.normalize(NETFLIX)
    await receiver.wait_for("/huge", 1)
    _, body = await eventually(
        lambda: tenant.deliveries(accepted["request_id"]),
        lambda r: r[0] == 200 and r[1]["deliveries"][0]["attempts"],
    )
    (delivery,) = body["deliveries"]
    assert (delivery["status"], delivery["attempt_count"]) == ("pending", 1)
    assert delivery["attempts"][0]["status_code"] == 503
    wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(hours=23) < wait <= timedelta(hours=24, minutes=1)


async def test_always_failing_goes_to_dead_letters_then_replays(
    client: Client, receiver: Receiver, services: Services
) -> None:
    tenant = await register(client, receiver, "/down")
    receiver.scripts["/down"] = [500]
    _, body = await tenant.normalize(NETFLIX)
    rid = body["request_id"]
    _, history = await eventually(
        lambda: tenant.deliveries(rid), lambda r: r[0] == 200 and r[1]["deliveries"][0]["status"] == "dead"
    )
    delivery = history["deliveries"][0]
    assert delivery["attempt_count"] == 3
    settings = Settings(broker_url=services.broker_url)

    async def letters() -> list[Any]:
        return [x async for _, _, x in read_dead_letters(settings) if x.event_id == delivery["delivery_id"]]

    found = await eventually(letters, lambda xs: len(xs) == 1)
    assert [(x.reason, x.replay_topic) for x in found] == [("delivery_exhausted", "deliveries.requests")]
    receiver.scripts["/down"] = [200]  # the receiver is fixed
    await replay_letters(settings, args(ids=[str(found[0].dead_letter_id)]))
    _, history = await eventually(
        lambda: tenant.deliveries(rid), lambda r: r[1]["deliveries"][0]["status"] == "succeeded"
    )
    assert [a["status_code"] for a in history["deliveries"][0]["attempts"]] == [500, 500, 500, 200]


async def test_410_disables_the_endpoint(client: Client, receiver: Receiver, services: Services) -> None:
    tenant = await register(client, receiver, "/gone")
    receiver.scripts["/gone"] = [410]
    _, body = await tenant.normalize(NETFLIX)
    _, history = await eventually(
        lambda: tenant.deliveries(body["request_id"]),
        lambda r: r[0] == 200 and r[1]["deliveries"][0]["status"] == "disabled",
    )
    assert [a["status_code"] for a in history["deliveries"][0]["attempts"]] == [410]  # no retries
    # Later results for the disabled endpoint are not attempted at all.
    _, second = await tenant.normalize({**NETFLIX, "description": "Spotify P0123"})
    _, history = await eventually(
        lambda: tenant.deliveries(second["request_id"]),
        lambda r: r[0] == 200 and r[1]["deliveries"][0]["status"] == "disabled",
    )
    assert history["deliveries"][0]["attempts"] == []
    assert len(receiver.received["/gone"]) == 1


async def test_ssrf_guard(client: Client, receiver: Receiver, services: Services) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for url in (
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:9/x",
        "http://[::1]/x",
    ):
        status, err, _ = await client.post(
            "/create_webhook",
            {"url": url, "client_id": f"c-{uuid.uuid4().hex[:8]}"},
            secret=None,
            headers=admin,
        )
        assert (status, err["error"]) == (422, "blocked_destination"), url
    # A *name* passes registration but resolves to a blocked address: refused at connect time.
    tenant = await register(client, receiver, "/never")
    status, _, _ = await client.post(
        "/create_webhook",
        {"url": f"http://localhost:{receiver.port}/never", "client_id": tenant.client_id},
        secret=None,
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    assert status == 200
    _, body = await tenant.normalize(NETFLIX)
    _, history = await eventually(
        lambda: tenant.deliveries(body["request_id"]),
        lambda r: r[0] == 200 and r[1]["deliveries"][0]["status"] == "dead",
    )
    assert "internal address 127.0.0.1" in history["deliveries"][0]["attempts"][0]["error"]
    assert receiver.received["/never"] == []
