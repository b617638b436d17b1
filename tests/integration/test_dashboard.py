"""The dashboard in a real headless Chromium while events flow, and its HTTP routes against the real stack."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streamapp.deadletters import DEAD_LETTER_TOPIC, DeadLetter
from streamapp.envelope import Envelope
from streamapp.kafka_security import bootstrap
from streamapp.models.licenses import CustomerRecord
from tests.integration.browser import ARTIFACTS, chromium_or_skip, chromium_page
from tests.integration.conftest import ADMIN, Client
from tests.integration.receiver import Receiver
from tests.integration.stack import Services, Worker, customer_record, eventually
from tests.integration.test_merchants import NETFLIX, receiver, register

__all__ = ["receiver"]  # the merchants tests' receiver fixture, used here too


@pytest.fixture
async def producer(services: Services) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap(services.broker_url))
    await prod.start()
    yield prod
    await prod.stop()


async def fixed_letter(producer: AIOKafkaProducer) -> tuple[DeadLetter, str]:
    """A letter as a since-fixed failure leaves it: a valid customer record; replaying it grants a license."""
    customer = CustomerRecord(
        id=str(uuid.uuid4()),
        name="replayed.example.com",
        account_manager="Grace",
        signed_tos=True,
        skus={"SKU1": True, "SKU2": False, "SKU3": False},
    )
    envelope = Envelope(event_id=uuid.uuid4(), source="test", key=customer.id, payload=customer.model_dump())
    letter = DeadLetter(
        pipeline="licenses",
        reason="rejected",
        detail="simulated: PostgreSQL refused it before a fix",
        topic="licenses.inbound",
        partition=0,
        offset=0,
        key_b64=base64.b64encode(customer.id.encode()).decode(),
        value_b64=base64.b64encode(envelope.encode()).decode(),
        replay_topic="licenses.inbound",
    )
    await producer.send_and_wait(DEAD_LETTER_TOPIC, key=customer.id.encode(), value=letter.encode())
    return letter, customer.id


PAGE_ROWS = 10  # dashboard.js: dlLimit


def filler_letter(n: int) -> DeadLetter:
    return DeadLetter(
        pipeline="tasks",
        reason="rejected",
        detail=f"filler {n}",
        topic="tasks.events",
        value_b64=base64.b64encode(b"{}").decode(),
        replay_topic="tasks.events",
    )


def number(text: str | None) -> float:
    try:
        return float(text or "")
    except ValueError:  # a dash until there are two samples
        return 0.0


async def keep_posting(client: Client, stop: asyncio.Event) -> int:
    """Customer records through the real webhook, a few per second, until told to stop."""
    sent = 0
    while not stop.is_set():
        status, _, _ = await client.post("/salesforce/webhook", customer_record(SKU2=True))
        sent += status == 202
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.15)
    return sent


async def test_the_dashboard_live_in_chromium(
    worker: Worker, client: Client, producer: AIOKafkaProducer, receiver: Receiver
) -> None:
    chromium_or_skip()  # before the data is set up
    # Older letters than the one replayed below: more than a page (10 rows) in all.
    for n in range(PAGE_ROWS):
        await producer.send_and_wait(DEAD_LETTER_TOPIC, value=filler_letter(n).encode())
    letter, customer_id = await fixed_letter(producer)
    # A record that bypassed the webhook's checks: the agent dead-letters it (`invalid`).
    await producer.send_and_wait("licenses.inbound", key=b"junk", value=f"junk {uuid.uuid4()}".encode())
    # One signed merchant delivery, so the deliveries table has a row with its attempt.
    tenant = await register(client, receiver, "/dash")
    assert (await tenant.normalize(NETFLIX))[0] == 202

    stop = asyncio.Event()
    posting = asyncio.create_task(keep_posting(client, stop))
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    try:
        async with chromium_page(1440, 1000) as (page, errors):
            await page.goto(worker.url + "/")
            # Outside dev the page asks for the admin token once.
            await page.fill("#token", "wrong")
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=not the admin token")
            await page.fill("#token", ADMIN)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#live.on", timeout=30_000)

            # The counters move while the records flow: events in/s of licenses above zero.
            in_rate = '[data-pipeline="licenses"] [data-stat="in"] .value'
            # (Polled from here: the page's CSP forbids the eval that `wait_for_function` uses.)
            rate = await eventually(
                lambda: page.locator(in_rate).text_content(), lambda text: number(text) > 0
            )
            assert number(rate) > 0
            # The live feed shows events the agents applied (no page reload: one EventSource).
            await page.wait_for_selector("#events li", timeout=30_000)
            assert await page.locator("#events li").count() > 0

            # Both letters are listed; the invalid one under its reason.
            row = page.locator(f'tr[data-id="{letter.dead_letter_id}"]')
            await row.wait_for(timeout=60_000)
            await page.wait_for_selector("#dl-reasons .chip:has-text('licenses · invalid')", timeout=60_000)
            await page.wait_for_selector("#deliveries td:has-text('succeeded')", timeout=60_000)
            await page.wait_for_selector("#deliveries .attempt.ok:has-text('200')")

            # Paging by cursor: the older page starts after the first ten and back again.
            await page.wait_for_selector("#dl-count:has-text('1\u201310 of')")
            await page.click("#dl-next")
            await page.wait_for_selector("#dl-count:has-text('11\u2013')")
            assert await row.count() == 0
            assert await page.locator("#dl-table tbody tr:has-text('filler')").count() > 0
            await page.click("#dl-prev")
            await row.wait_for()
            await row.locator("button.replay").click()
            await page.wait_for_selector("#toast:has-text('Replayed to licenses.inbound')")
            await page.locator(f'tr[data-id="{letter.dead_letter_id}"] .replayed').wait_for()

            # It took effect: the replayed record granted its license.
            status, body = await eventually(
                lambda: client.get(f"/licenses/{customer_id}"),
                lambda r: r[0] == 200 and bool(r[1]["licenses"]),
            )
            assert status == 200
            assert [(lic["sku"], lic["active"]) for lic in body["licenses"]] == [("SKU1", True)]
            await page.screenshot(path=str(shot), full_page=True)
            assert errors == []
    finally:
        stop.set()
        sent = await posting
    assert sent > 0
    assert shot.stat().st_size > 10_000


async def test_dead_letter_routes_page_filter_and_replay(client: Client, producer: AIOKafkaProducer) -> None:
    letter, _ = await fixed_letter(producer)

    async def listed() -> tuple[int, Any]:
        return await client.get("/dead-letters?pipeline=licenses&reason=rejected&limit=1", token=ADMIN)

    # The list is re-read every few seconds: the new letter shows up shortly.
    status, body = await eventually(
        listed,
        lambda r: (
            r[0] == 200
            and r[1]["letters"][:1] != []
            and r[1]["letters"][0]["dead_letter_id"] == str(letter.dead_letter_id)
        ),
    )
    assert status == 200
    assert len(body["letters"]) == 1
    [shown] = body["letters"]
    assert shown["dead_letter_id"] == str(letter.dead_letter_id)
    assert shown["position"] == "licenses.inbound[0]@0"
    assert "value_b64" not in shown
    assert shown["preview"].startswith('{"event_id"')
    assert any(r["pipeline"] == "licenses" and r["reason"] == "rejected" for r in body["by_reason"])
    # Page by page to the end: each letter once, `next` null on the last page.
    total, seen, cursor = body["total"], [shown["dead_letter_id"]], body["next"]
    while cursor is not None:
        status, page = await client.get(
            f"/dead-letters?pipeline=licenses&reason=rejected&limit=1&after={cursor}", token=ADMIN
        )
        assert (status, page["total"]) == (200, total)
        seen += [row["dead_letter_id"] for row in page["letters"]]
        cursor = page["next"]
    assert len(seen) == len(set(seen)) == total
    status, other = await client.get("/dead-letters?pipeline=no-such-pipeline", token=ADMIN)
    assert (status, other["total"], other["letters"]) == (200, 0, [])

    status, replayed, _ = await client.post(
        f"/dead-letters/{letter.dead_letter_id}/replay",
        b"",
        secret=None,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert status == 200, replayed
    assert replayed == {
        "replayed": str(letter.dead_letter_id),
        "topic": "licenses.inbound",
        "event_id": None,
    }
    status, missing, _ = await client.post(
        f"/dead-letters/{uuid.uuid4()}/replay", b"", secret=None, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert (status, missing["error"]) == (404, "not_found")
    status, after = await client.get("/dead-letters?pipeline=licenses&reason=rejected&limit=500", token=ADMIN)
    [again] = [row for row in after["letters"] if row["dead_letter_id"] == str(letter.dead_letter_id)]
    assert again["replayed_at"] is not None


async def test_recent_deliveries_route(client: Client, receiver: Receiver) -> None:
    tenant = await register(client, receiver, "/recent")
    status, body = await tenant.normalize(NETFLIX)
    assert status == 202
    request_id = body["request_id"]

    async def newest() -> tuple[int, Any]:
        return await client.get("/deliveries?limit=5", token=ADMIN)

    status, recent = await eventually(
        newest,
        lambda r: (
            r[0] == 200
            and any(d["subject_id"] == request_id and d["status"] == "succeeded" for d in r[1]["deliveries"])
        ),
    )
    assert status == 200
    [delivery] = [d for d in recent["deliveries"] if d["subject_id"] == request_id]
    assert delivery["owner"] == tenant.client_id
    assert delivery["channel"] == "webhook"
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert "config" not in delivery  # endpoint settings hold secrets
    status, only_dead = await client.get("/deliveries?status=dead&limit=500", token=ADMIN)
    assert status == 200
    assert all(d["status"] == "dead" for d in only_dead["deliveries"])
    # Keyset paging like every list: one at a time, each delivery once, newest first.
    status, everything = await client.get("/deliveries?limit=1000", token=ADMIN)
    assert (status, everything["next"]) == (200, None)
    paged: list[str] = []
    cursor = ""
    while cursor is not None:
        status, page = await client.get(
            f"/deliveries?limit=1{'&after=' + cursor if cursor else ''}", token=ADMIN
        )
        assert status == 200
        paged += [d["delivery_id"] for d in page["deliveries"]]
        cursor = page["next"]
    # (A delivery made meanwhile may lead the first page: it is newer than every other.)
    assert len(paged) == len(set(paged))
    assert {d["delivery_id"] for d in everything["deliveries"]} <= set(paged)


async def test_the_overview_counts_the_groups_offsets_like_lag(client: Client) -> None:
    """All workers' lag comes from the broker: here one worker, so it must agree with its `/lag`."""

    async def inbound() -> dict[str, Any]:
        _, body = await client.get("/dashboard/overview", token=ADMIN)
        [licenses] = [card for card in body["pipelines"] if card["name"] == "licenses"]
        [topic] = [t for t in licenses["topics"] if t["name"] == "licenses.inbound"]
        return dict(topic)

    before = await inbound()
    for _ in range(10):
        status, _, _ = await eventually(
            lambda: client.post("/salesforce/webhook", customer_record(SKU3=True)), lambda r: r[0] == 202
        )
        assert status == 202
    # Worked off and committed: the group's committed offsets reach the (fetch-checked) ends.
    after = await eventually(
        inbound, lambda t: t["end"] >= before["end"] + 10 and t["lag"] == 0 and t["committed"] == t["end"]
    )
    assert after["end"] >= before["end"] + 10
    assert (after["lag"], after["committed"]) == (0, after["end"])
    _, lag = await client.get("/lag", token=ADMIN)
    ends = sum(row["end"] for row in lag["partitions"] if row["topic"] == "licenses.inbound")
    assert ends == after["end"]
    assert after["partitions"] == 4
