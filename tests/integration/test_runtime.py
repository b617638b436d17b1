"""The batch runtime against the real worker: poison, oversized state and a broker outage lose nothing."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaProducer

from streamapp.deadletter_cli import read_dead_letters
from streamapp.deadletters import DeadLetter
from streamapp.envelope import Envelope
from streamapp.kafka_security import bootstrap
from streamapp.models.licenses import CustomerRecord
from streamapp.settings import Settings
from tests.integration.conftest import ADMIN, Client
from tests.integration.stack import Services, Worker, customer_record, eventually
from tests.integration.test_licenses import account, soap
from tests.integration.test_tasks import hook, post


@pytest.fixture
def settings(services: Services) -> Settings:
    return Settings(broker_url=services.broker_url, database_url=services.database_url)


@pytest.fixture
async def producer(services: Services) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap(services.broker_url), max_request_size=2**20)
    await prod.start()
    yield prod
    await prod.stop()


def poison_envelope() -> tuple[str, bytes]:
    """Finding 1's record: ~784 KB, with an id PostgreSQL's index cannot hold (3,000 random chars).

    It is produced to the inbound topic directly, as an older ingest (before the
    edge limits) accepted it: the runtime must dead-letter it without losing its batch-mates.
    """
    cid = secrets.token_urlsafe(2400)[:3000]
    record = CustomerRecord(
        id=cid,
        name="poison.example.com",
        account_manager=secrets.token_hex(390_000),
        signed_tos=True,
        skus={"SKU1": True, "SKU2": False, "SKU3": False},
    )
    envelope = Envelope(event_id=uuid.uuid4(), source="test", key=cid, payload=record.model_dump())
    return cid, envelope.encode()


async def stored_payload_key(db: asyncpg.Pool, letter: DeadLetter) -> bytes | None:
    row = await db.fetchrow(
        "SELECT key, length(value) AS size FROM dead_letter_payloads WHERE dead_letter_id = $1",
        letter.dead_letter_id,
    )
    return None if row is None else bytes(row["key"])


@pytest.mark.parametrize("poison_first", [True, False], ids=["poison-first", "poison-last"])
async def test_a_poison_record_is_dead_lettered_and_its_batch_mates_land(
    poison_first: bool,
    client: Client,
    settings: Settings,
    producer: AIOKafkaProducer,
    db: asyncpg.Pool,
    services: Services,
) -> None:
    """Found: a dead letter too large to publish made the batch loop ack the batch: six valid
    records posted after the poison were committed and never applied."""
    cid, poison = poison_envelope()
    records = [customer_record(SKU3=True) for _ in range(6)]
    if poison_first:
        await producer.send_and_wait("licenses.inbound", key=cid.encode(), value=poison)
    for record in records:
        status, body, _ = await client.post("/salesforce/webhook", record)
        assert status == 202, body
    if not poison_first:
        await producer.send_and_wait("licenses.inbound", key=cid.encode(), value=poison)

    for record in records:
        status, body = await eventually(
            lambda r=record: client.get(f"/licenses/{r['Id']}"),  # type: ignore[misc]
            lambda res: res[0] == 200 and bool(res[1]["licenses"]),
        )
        assert status == 200
        assert [(lic["sku"], lic["active"]) for lic in body["licenses"]] == [("SKU1", True), ("SKU3", True)]

    async def poison_letters() -> list[tuple[DeadLetter, bytes | None]]:
        out: list[tuple[DeadLetter, bytes | None]] = []
        async for _, _, letter in read_dead_letters(settings):
            if letter.payload_in_postgres and letter.pipeline == "licenses":
                key = await stored_payload_key(db, letter)
                if key == cid.encode():
                    out.append((letter, key))
        return out

    found = await eventually(poison_letters, lambda f: len(f) == 1)
    assert len(found) == 1
    letter, _ = found[0]
    assert letter.reason == "rejected"
    assert letter.value_b64 == ""  # the bytes are in PostgreSQL, whole
    size = await db.fetchval(
        "SELECT length(value) FROM dead_letter_payloads WHERE dead_letter_id = $1", letter.dead_letter_id
    )
    assert size == len(poison)

    # The CLI lists it (and says where its bytes are).
    env = {**os.environ, "STREAMAPP_BROKER_URL": services.broker_url}
    done = subprocess.run(
        [sys.executable, "-m", "streamapp", "dead-letters", "list", "--json", "--reason", "rejected"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert str(letter.dead_letter_id) in {row["dead_letter_id"] for row in listed}

    # Nothing is left behind: the inbound topic is committed to its end.
    _, lag = await eventually(
        lambda: client.get("/lag", token=ADMIN),
        lambda r: r[0] == 200 and r[1]["topics"].get("licenses.inbound") == 0,
    )
    assert lag["topics"]["licenses.inbound"] == 0


async def test_poison_salesforce_values_are_refused_at_the_edge(client: Client) -> None:
    """Found: a naive or year-9999 LastModifiedDate and a 3,000-character Id were accepted (Ack)
    and froze their customer or failed in PostgreSQL for ever."""
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    good_id = "001" + uuid.uuid4().hex[:15]
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    # A SOAP fault names the offending field (its faultstring); the JSON errors carry types.
    cases = [
        ("LastModifiedDate", account(good_id, "2026-01-01T10:00:00", SKU1="true")),  # naive
        ("LastModifiedDate", account(good_id, "9999-12-31T00:00:00Z", SKU1="true")),
        ("Notification[0].Id", account("001" + "x" * 3000, "2026-01-01T10:00:00Z", SKU1="true")),
    ]
    for expected, fields in cases:
        status, body, _ = await client.post(
            "/salesforce/webhook", soap([("04l" + uuid.uuid4().hex[:15], "Account", fields)]), headers=headers
        )
        assert status == 422, (expected, body)
        assert expected in body, body
    status, body, _ = await client.post(
        "/salesforce/webhook",
        soap([("04l" + uuid.uuid4().hex[:15], "Account", account(good_id, future, SKU1="true"))]),
        headers=headers,
    )
    assert status == 422
    # NUL is refused in a JSON record too, with its own reason.
    status, body, _ = await client.post("/salesforce/webhook", customer_record(Name="nul\u0000corp"))
    assert status == 422
    assert body["errors"][0]["type"] == "nul_character"


async def test_a_task_too_large_for_a_message_does_not_stall_the_others(
    client: Client, settings: Settings
) -> None:
    """Found: a task grown past the producer limit was retried forever; every later task waited."""
    user, big = f"u-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    start = datetime.now(UTC) - timedelta(hours=1)
    assert (await post(client, hook("created", start, user, big, "x")))[0] == 202
    for n in range(1, 21):
        content = secrets.token_hex(4_900) + str(n)  # ~10,000 characters each
        status, body = await post(client, hook("updated", start + timedelta(seconds=n), user, big, content))
        assert status == 202, body
    normal = f"t-{uuid.uuid4()}"
    assert (await post(client, hook("created", start, "someone-else", normal, "buy milk")))[0] == 202
    status, body = await eventually(lambda: client.get(f"/tasks/{normal}"), lambda r: r[0] == 200, timeout=20)
    assert status == 200, body
    assert body["content"] == "buy milk"

    async def big_letters() -> list[DeadLetter]:
        return [
            letter
            async for _, _, letter in read_dead_letters(settings)
            if letter.pipeline == "tasks" and letter.key == big.encode()
        ]

    letters = await eventually(big_letters, lambda found: len(found) >= 1)
    assert letters
    assert {letter.reason for letter in letters} == {"rejected"}
    assert all("PayloadTooLarge" in letter.detail for letter in letters)
    # What fitted landed: the task exists with the events before it grew too large.
    status, body = await eventually(lambda: client.get(f"/tasks/{big}"), lambda r: r[0] == 200)
    assert status == 200


def broker_process(services: Services) -> psutil.Process:
    assert services.proc is not None
    for child in psutil.Process(services.proc.pid).children(recursive=True):
        if "tansu" in " ".join(child.cmdline()).lower():
            return child
    raise LookupError("no embedded broker process")


async def test_a_broker_outage_while_dead_lettering_loses_nothing(
    client: Client, worker: Worker, settings: Settings, services: Services, producer: AIOKafkaProducer
) -> None:
    """The broker stops answering (SIGSTOP) while a batch holds events to dead-letter: nothing
    is acked until the letters are durable, and after it answers again every event has landed
    or is a dead letter."""
    junk = [f"junk {uuid.uuid4()}".encode() for _ in range(5)]
    records = [customer_record(SKU2=True) for _ in range(5)]
    for record in records:
        assert (await client.post("/salesforce/webhook", record))[0] == 202
    broker = broker_process(services)
    for value in junk:
        await producer.send("licenses.inbound", key=b"junk", value=value)
    await producer.flush()
    broker.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(8)  # longer than the worker's publish timeout (5 s)
    finally:
        broker.send_signal(signal.SIGCONT)

    async def letters() -> set[bytes]:
        return {letter.value async for _, _, letter in read_dead_letters(settings) if letter.value in junk}

    found = await eventually(letters, lambda f: len(f) == len(junk), timeout=120)
    assert found == set(junk)
    for record in records:
        status, _ = await eventually(
            lambda r=record: client.get(f"/licenses/{r['Id']}"),  # type: ignore[misc]
            lambda res: res[0] == 200 and bool(res[1]["licenses"]),
            timeout=120,
        )
        assert status == 200
    _, lag = await eventually(
        lambda: client.get("/lag", token=ADMIN),
        lambda r: r[0] == 200 and r[1]["topics"].get("licenses.inbound") == 0,
        timeout=120,
    )
    assert lag["topics"]["licenses.inbound"] == 0
