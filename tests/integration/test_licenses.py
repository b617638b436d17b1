"""The licenses pipeline end to end: real HTTP in, real worker, rows in the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from tests.integration.conftest import ADMIN, Client
from tests.integration.stack import customer_record, eventually

ORG = "00D000000000001AAA"


async def licenses_of(client: Client, customer_id: str) -> tuple[int, Any]:
    return await client.get(f"/licenses/{customer_id}")


def active(body: Any) -> set[str]:
    return {lic["sku"] for lic in body.get("licenses", []) if lic["active"]}


async def history_count(db: asyncpg.Pool, customer_id: str) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM license_history WHERE customer_id = $1", customer_id)
    return count


async def test_grant_then_revoke(client: Client, db: asyncpg.Pool) -> None:
    record = customer_record(SKU1=True, SKU2=True, SKU3=False)
    status, body, _ = await client.post("/salesforce/webhook", record)
    assert status == 202
    assert body["status"] == "accepted"
    assert len(body["event_ids"]) == 1
    cid = record["Id"]
    status, body = await eventually(
        lambda: licenses_of(client, cid), lambda r: active(r[1]) == {"SKU1", "SKU2"}
    )
    assert status == 200
    assert active(body) == {"SKU1", "SKU2"}
    assert body["customer_id"] == cid
    assert all(lic["granted_at"] and lic["revoked_at"] is None for lic in body["licenses"])

    # Revoke SKU2 by un-buying it; revoke everything by withdrawing the TOS.
    await client.post("/salesforce/webhook", {**record, "SKU2": False})
    _, body = await eventually(lambda: licenses_of(client, cid), lambda r: active(r[1]) == {"SKU1"})
    assert active(body) == {"SKU1"}
    sku2 = next(lic for lic in body["licenses"] if lic["sku"] == "SKU2")
    assert sku2["revoked_at"] is not None

    await client.post("/salesforce/webhook", {**record, "SignedTos": False})
    _, body = await eventually(lambda: licenses_of(client, cid), lambda r: active(r[1]) == set())
    assert active(body) == set()

    status, hist = await eventually(
        lambda: client.get(f"/customers/{cid}/license-history"), lambda r: len(r[1]["history"]) == 4
    )
    assert status == 200
    actions = [(h["action"], h["sku"]) for h in hist["history"]]
    # Newest first.
    assert actions[0] == ("revoke", "SKU1")
    assert ("revoke", "SKU2") in actions[1:2]
    assert sorted(actions[2:]) == [("grant", "SKU1"), ("grant", "SKU2")]
    # Customers come through their own sink; it catches up with the licenses one.
    row = await eventually(
        lambda: db.fetchrow("SELECT name, signed_tos FROM customers WHERE id = $1", cid),
        lambda r: r is not None and r["signed_tos"] is False,
    )
    assert row is not None
    assert (row["name"], row["signed_tos"]) == ("acme.example.com", False)


async def test_customer_without_licenses_is_known(client: Client) -> None:
    record = customer_record(SignedTos=False, SKU1=True)
    await client.post("/salesforce/webhook", record)
    status, body = await eventually(lambda: licenses_of(client, record["Id"]), lambda r: r[0] == 200)
    assert status == 200
    assert body == {"customer_id": record["Id"], "licenses": []}
    status, hist = await client.get(f"/customers/{record['Id']}/license-history")
    assert (status, hist["history"]) == (200, [])


async def test_idempotency_key_is_not_bound_to_the_body(client: Client, db: asyncpg.Pool) -> None:
    """Finding 12: the same key with another record got a 202, and the record was dropped downstream."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = customer_record(SKU1=True)
    accepted = await client.post("/salesforce/webhook", first, headers=key)
    assert accepted[0] == 202, accepted
    # The same record again under the key (a retry): the same event, accepted.
    again = await client.post("/salesforce/webhook", first, headers=key)
    assert (again[0], again[1]["event_ids"]) == (202, accepted[1]["event_ids"])
    other = customer_record(SKU2=True)
    status, body, _ = await client.post("/salesforce/webhook", other, headers=key)
    assert (status, body["error"]) == (422, "idempotency_key_reused")
    status, body, _ = await client.post("/salesforce/webhook", first, headers={"Idempotency-Key": "k" * 256})
    assert (status, body["error"]) == (422, "validation_failed")
    await eventually(lambda: history_count(db, first["Id"]), lambda n: n == 1)
    assert await history_count(db, other["Id"]) == 0


async def test_duplicates_change_nothing(client: Client, db: asyncpg.Pool) -> None:
    record = customer_record(SKU1=True, SKU3=True)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/salesforce/webhook", record, headers=key)
    second = await client.post("/salesforce/webhook", record, headers=key)
    # Same idempotency key -> same event id, recognised downstream.
    assert first[1]["event_ids"] == second[1]["event_ids"]
    # The same content again without a key: a new event that changes nothing.
    third = await client.post("/salesforce/webhook", record)
    assert third[0] == 202
    cid = record["Id"]
    await eventually(lambda: history_count(db, cid), lambda n: n >= 2)
    # Give the agent time to (wrongly) emit more, then check it did not.
    await client.post("/salesforce/webhook", customer_record())  # a marker behind them
    await eventually(lambda: history_count(db, cid), lambda n: n > 2, timeout=3)
    assert await history_count(db, cid) == 2
    _, body = await licenses_of(client, cid)
    assert active(body) == {"SKU1", "SKU3"}


async def test_unknown_customer_is_404(client: Client) -> None:
    status, body = await client.get(f"/licenses/{uuid.uuid4()}")
    assert (status, body["error"]) == (404, "not_found")
    status, body = await client.get(f"/customers/{uuid.uuid4()}/license-history")
    assert (status, body["error"]) == (404, "not_found")


async def test_history_limit_is_validated(client: Client) -> None:
    for bad in ("0", "abc", "100000"):
        status, body = await client.get(f"/customers/x/license-history?limit={bad}")
        assert (status, body["error"]) == (422, "validation_failed")


async def test_table_inspection(client: Client) -> None:
    record = customer_record(SKU2=True)
    await client.post("/salesforce/webhook", record)
    status, body = await eventually(
        lambda: client.get(f"/tables/license-state/{record['Id']}", token=ADMIN), lambda r: r[0] == 200
    )
    assert status == 200
    assert set(body["value"]["licensed"]) == {"SKU1", "SKU2"}
    status, listing = await client.get("/tables/", token=ADMIN)
    assert status == 200
    names = [t["name"] for t in listing["tables"]]
    assert "license-state" in names
    state = next(t for t in listing["tables"] if t["name"] == "license-state")
    assert state["local_partitions"]  # a single worker owns every partition
    status, body = await client.get("/tables/license-state/no-such-customer", token=ADMIN)
    assert (status, body["error"]) == (404, "not_found")
    status, body = await client.get("/tables/no-such-table/x", token=ADMIN)
    assert (status, body["error"]) == (404, "not_found")


async def test_health_and_ready(client: Client) -> None:
    assert await client.get("/health") == (200, {"status": "ok"})
    status, body = await client.get("/ready")
    assert status == 200
    assert body["checks"] == {"broker": True, "database": True, "topics": True, "tables_recovered": True}


async def test_json_event_ids_are_in_the_topic_payload(client: Client, db: asyncpg.Pool) -> None:
    record = customer_record(SKU1=True)
    _, body, _ = await client.post("/salesforce/webhook", record)
    event_id = body["event_ids"][0]
    source = await eventually(
        lambda: db.fetchval(
            "SELECT source_event_id::text FROM license_history WHERE customer_id=$1", record["Id"]
        ),
        lambda v: v is not None,
    )
    assert source == event_id


def soap(notifications: list[tuple[str, str, dict[str, str]]], org: str = ORG) -> bytes:
    """An Outbound Message envelope; each notification is (id, sObject type, fields)."""
    items = "".join(
        f"<Notification><Id>{nid}</Id>"
        f'<sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        + "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in fields.items())
        + "</sObject></Notification>"
        for nid, kind, fields in notifications
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k000000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        f"{items}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def account(cid: str, when: str, **skus: str) -> dict[str, str]:
    return {
        "Id": cid,
        "Name": "globex.example.com",
        "AccountManager__c": "Grace Hopper",
        "SignedTos__c": "true",
        "LastModifiedDate": when,
        **{f"{k}__c": v for k, v in skus.items()},
    }


async def test_soap_outbound_message(client: Client, db: asyncpg.Pool) -> None:
    acct = "001" + uuid.uuid4().hex[:15]
    other = "001" + uuid.uuid4().hex[:15]
    opportunity = {
        "Id": "006" + uuid.uuid4().hex[:15],
        "AccountId": other,
        "Name": "Big deal",
        "Account_Name__c": "initech.example.com",
        "SignedTos__c": "true",
        "SKU3__c": "true",
        "LastModifiedDate": "2026-01-01T10:00:00.000Z",
    }
    message = soap(
        [
            (
                "04l" + uuid.uuid4().hex[:15],
                "Account",
                account(acct, "2026-01-01T10:00:00.000Z", SKU1="true", SKU2="true"),
            ),
            ("04l" + uuid.uuid4().hex[:15], "Opportunity", opportunity),
        ]
    )
    status, body, headers = await client.post(
        "/salesforce/webhook", message, headers={"Content-Type": "text/xml; charset=utf-8"}
    )
    assert status == 200
    assert "<Ack>true</Ack>" in body
    assert len(headers["X-Event-Ids"].split(",")) == 2
    _, lic = await eventually(lambda: licenses_of(client, acct), lambda r: active(r[1]) == {"SKU1", "SKU2"})
    assert active(lic) == {"SKU1", "SKU2"}
    _, lic = await eventually(lambda: licenses_of(client, other), lambda r: active(r[1]) == {"SKU3"})
    assert active(lic) == {"SKU3"}
    name = await eventually(
        lambda: db.fetchval("SELECT name FROM customers WHERE id = $1", other),
        lambda n: n is not None,
    )
    assert name == "initech.example.com"

    # Salesforce resends the same message (same notification ids): nothing changes,
    # and the Ack is still true.
    before = await history_count(db, acct)
    status, body, _ = await client.post("/salesforce/webhook", message)  # no Content-Type: sniffed
    assert (status, "<Ack>true</Ack>" in body) == (200, True)
    assert before == 2


async def test_soap_out_of_order_and_resend(client: Client, db: asyncpg.Pool) -> None:
    acct = "001" + uuid.uuid4().hex[:15]
    older = (
        "04l" + uuid.uuid4().hex[:15],
        "Account",
        account(acct, "2026-02-01T10:00:00Z", SKU1="true"),
    )
    newer = (
        "04l" + uuid.uuid4().hex[:15],
        "Account",
        account(acct, "2026-02-01T11:00:00Z", SKU1="false", SKU2="true"),
    )
    # The newer change arrives first, then the older one: the older must not win.
    assert (await client.post("/salesforce/webhook", soap([newer])))[0] == 200
    await eventually(lambda: licenses_of(client, acct), lambda r: active(r[1]) == {"SKU2"})
    status, _, headers = await client.post("/salesforce/webhook", soap([older]))
    assert status == 200
    older_event = headers["X-Event-Ids"]
    # And a resend of the newer one, un-acked the first time.
    assert (await client.post("/salesforce/webhook", soap([newer])))[0] == 200
    # The agent has seen the older record once its id is among the customer's recent events.
    _, state = await eventually(
        lambda: client.get(f"/tables/license-state/{acct}", token=ADMIN),
        lambda r: older_event in r[1]["value"]["recent_event_ids"],
    )
    assert older_event in state["value"]["recent_event_ids"]
    assert set(state["value"]["licensed"]) == {"SKU2"}
    await asyncio.sleep(0.5)  # a (wrong) update would now be on its way to the sink
    _, lic = await licenses_of(client, acct)
    assert active(lic) == {"SKU2"}
    assert await history_count(db, acct) == 1


async def test_soap_org_allow_list(client: Client) -> None:
    acct = "001" + uuid.uuid4().hex[:15]
    message = soap(
        [("04l1", "Account", account(acct, "2026-01-01T00:00:00Z", SKU1="true"))],
        org="00DEVIL0000000000",
    )
    status, body, headers = await client.post("/salesforce/webhook", message)
    assert status == 403
    assert "<soapenv:Fault>" in body
    assert headers["X-Error-Reason"] == "forbidden"
    assert (await licenses_of(client, acct))[0] == 404


async def test_soap_bad_inputs(client: Client) -> None:
    status, body, headers = await client.post(
        "/salesforce/webhook", b"<notxml", headers={"Content-Type": "text/xml"}
    )
    assert (status, headers["X-Error-Reason"]) == (400, "malformed_body")
    assert "<faultstring>" in body
    # Well-formed XML that is not an Outbound Message.
    status, _, headers = await client.post("/salesforce/webhook", b"<a/>")
    assert (status, headers["X-Error-Reason"]) == (422, "validation_failed")
    # Unsupported sObject type and a missing SignedTos__c are named.
    bad = soap([("04l9", "Contact", {"Id": "003x"}), ("04l8", "Account", {"Id": "001y", "Name": "n"})])
    status, body, headers = await client.post("/salesforce/webhook", bad)
    assert status == 422
    assert "Notification[0].sObject" in body
    assert "Notification[1].SignedTos__c" in body
    # Entity expansion (billion laughs) is refused, not expanded.
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>"
    )
    status, _, headers = await client.post("/salesforce/webhook", bomb)
    assert (status, headers["X-Error-Reason"]) == (400, "malformed_body")


async def test_json_bad_inputs(client: Client) -> None:
    status, body, _ = await client.post("/salesforce/webhook", b"{not json")
    assert (status, body["error"]) == (400, "malformed_body")
    status, body, _ = await client.post("/salesforce/webhook", b"[1, 2]")
    assert (status, body["error"]) == (400, "malformed_body")
    status, body, _ = await client.post("/salesforce/webhook", b"")
    assert (status, body["error"]) == (400, "malformed_body")
    # Wrong types: a string where a bool belongs, a non-UUID id.
    status, body, _ = await client.post("/salesforce/webhook", customer_record(SignedTos="yes", Id="nope"))
    assert (status, body["error"]) == (422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"SignedTos", "Id"}
    # Missing keys are each named.
    record = customer_record()
    del record["SKU2"], record["Name"]
    status, body, _ = await client.post("/salesforce/webhook", record)
    assert status == 422
    assert {e["field"] for e in body["errors"]} == {"SKU2", "Name"}
    # Unknown extra keys are ignored.
    status, _, _ = await client.post("/salesforce/webhook", customer_record(Extra="x", Another=[1]))
    assert status == 202


async def test_size_limit(client: Client) -> None:
    huge = customer_record(Name="x" * (70 * 1024))
    status, body, _ = await client.post("/salesforce/webhook", huge)
    assert (status, body["error"]) == (413, "payload_too_large")

    # A chunked upload with no Content-Length is cut off while reading.
    async def chunks() -> Any:
        for _ in range(80):
            yield b" " * 1024

    async with client.session.post(
        client.base + "/salesforce/webhook",
        data=chunks(),
        headers={"X-Webhook-Secret": "test-shared-secret"},
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "payload_too_large"


async def test_shared_secret(client: Client) -> None:
    record = customer_record()
    for secret in (None, "wrong"):
        status, body, _ = await client.post("/salesforce/webhook", record, secret=secret)
        assert (status, body["error"]) == (401, "unauthorized")
    # The secret may also come as a bearer token or ?token= (Salesforce cannot set headers).
    status, _, _ = await client.post(
        "/salesforce/webhook",
        record,
        secret=None,
        headers={"Authorization": "Bearer test-shared-secret"},
    )
    assert status == 202
    status, _, _ = await client.post("/salesforce/webhook?token=test-shared-secret", record, secret=None)
    assert status == 202
    assert (await licenses_of(client, record["Id"]))[0] in (200, 404)


async def test_rejected_input_never_reaches_the_topic(client: Client, db: asyncpg.Pool) -> None:
    record = customer_record(SKU1=True)
    await client.post("/salesforce/webhook", {**record, "SKU2": "true"})  # 422
    await client.post("/salesforce/webhook", record, secret="wrong")  # 401
    marker = customer_record()
    await client.post("/salesforce/webhook", marker)
    await eventually(lambda: licenses_of(client, marker["Id"]), lambda r: r[0] == 200)
    assert (await licenses_of(client, record["Id"]))[0] == 404
    assert json.dumps(record)  # the record itself was valid JSON all along
