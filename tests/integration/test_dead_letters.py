"""The dead-letter path: what the agents cannot process lands there, and the CLI reads and replays it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from streamapp.deadletter_cli import list_letters, read_dead_letters, replay_letters
from streamapp.deadletters import DEAD_LETTER_TOPIC, DeadLetter
from streamapp.envelope import Envelope
from streamapp.kafka_security import bootstrap
from streamapp.models.licenses import CustomerRecord
from streamapp.settings import Settings
from tests.integration.conftest import Client
from tests.integration.stack import Services, Worker, customer_record, eventually


@pytest.fixture
def settings(services: Services) -> Settings:
    return Settings(broker_url=services.broker_url)


@pytest.fixture
async def producer(services: Services) -> AsyncIterator[AIOKafkaProducer]:
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap(services.broker_url))
    await prod.start()
    yield prod
    await prod.stop()


def args(**kw: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "pipeline": None,
        "reason": None,
        "ids": None,
        "limit": 100000,
        "json": False,
        "dry_run": False,
    }
    return argparse.Namespace(**{**defaults, **kw})


async def letters_with_value(settings: Settings, value: bytes) -> list[DeadLetter]:
    return [letter async for _, _, letter in read_dead_letters(settings) if letter.value == value]


async def test_undecodable_record_is_dead_lettered(
    worker: Worker, settings: Settings, producer: AIOKafkaProducer
) -> None:
    junk = f"not an envelope {uuid.uuid4()}".encode()
    meta = await producer.send_and_wait("licenses.inbound", key=b"junk", value=junk)
    letters = await eventually(lambda: letters_with_value(settings, junk), lambda found: len(found) == 1)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.pipeline == "licenses"
    assert letter.reason == "invalid"
    assert (letter.topic, letter.partition, letter.offset) == (
        "licenses.inbound",
        meta.partition,
        meta.offset,
    )
    assert letter.position == f"licenses.inbound[{meta.partition}]@{meta.offset}"
    assert letter.key == b"junk"
    assert letter.replay_topic == "licenses.inbound"
    assert "ValidationError" in letter.detail


async def test_replay_reinjects_the_original(
    worker: Worker,
    settings: Settings,
    producer: AIOKafkaProducer,
    client: Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A letter as an earlier, since-fixed failure would have left it: a valid record.
    customer = CustomerRecord(
        id=str(uuid.uuid4()),
        name="wonka.example.com",
        account_manager="Ken",
        signed_tos=True,
        skus={"SKU1": False, "SKU2": True, "SKU3": False},
    )
    envelope = Envelope(event_id=uuid.uuid4(), source="test", key=customer.id, payload=customer.model_dump())
    letter = DeadLetter(
        pipeline="licenses",
        reason="rejected",
        detail="simulated",
        topic="licenses.inbound",
        partition=0,
        offset=0,
        key_b64=None,
        value_b64="",
        replay_topic="licenses.inbound",
    ).model_copy(update={"value_b64": __import__("base64").b64encode(envelope.encode()).decode()})
    await producer.send_and_wait(DEAD_LETTER_TOPIC, key=customer.id.encode(), value=letter.encode())

    assert await replay_letters(settings, args(ids=[str(letter.dead_letter_id)], dry_run=True)) == 0
    assert "1 dead letter(s) would be replayed" in capsys.readouterr().out
    assert (await client.get(f"/licenses/{customer.id}"))[0] == 404  # dry run sent nothing

    assert await replay_letters(settings, args(ids=[str(letter.dead_letter_id)])) == 0
    assert f"replayed {letter.dead_letter_id} -> licenses.inbound" in capsys.readouterr().out
    # Customers and licenses have separate sinks: wait for the license itself.
    status, body = await eventually(
        lambda: client.get(f"/licenses/{customer.id}"), lambda r: r[0] == 200 and bool(r[1]["licenses"])
    )
    assert status == 200
    assert [(lic["sku"], lic["active"]) for lic in body["licenses"]] == [("SKU2", True)]

    # Listing shows it, filtered by reason, as text and as JSON.
    assert await list_letters(settings, args(ids=[str(letter.dead_letter_id)])) == 0
    out = capsys.readouterr().out
    assert str(letter.dead_letter_id) in out
    assert "1 dead letter(s)" in out
    assert await list_letters(settings, args(ids=[str(letter.dead_letter_id)], json=True)) == 0
    assert '"reason": "rejected"' in capsys.readouterr().out


async def test_replaying_a_still_bad_letter_dead_letters_it_again(
    worker: Worker, settings: Settings, producer: AIOKafkaProducer
) -> None:
    junk = f"still junk {uuid.uuid4()}".encode()
    await producer.send_and_wait("licenses.inbound", key=b"k", value=junk)
    first = await eventually(lambda: letters_with_value(settings, junk), lambda found: len(found) == 1)
    assert len(first) == 1
    await replay_letters(settings, args(ids=[str(first[0].dead_letter_id)]))
    both = await eventually(lambda: letters_with_value(settings, junk), lambda found: len(found) == 2)
    assert len(both) == 2  # nothing lost: it failed again and is back in the dead-letter topic


async def test_records_agent_dead_letters_a_record_postgres_rejects(
    worker: Worker, settings: Settings, producer: AIOKafkaProducer, db: asyncpg.Pool
) -> None:
    """A NUL byte is valid JSON but not PostgreSQL text. Ingest refuses it now (422); one already
    in the topic is dead-lettered as itself (replayable to the inbound topic) while its batch-mate
    lands, and a replay of the fixed record lands too."""
    bad, good = customer_record(SKU1=True), customer_record(SKU1=False, SKU2=True)
    bad["Name"] = "nul\u0000corp"
    for record in (bad, good):
        customer = CustomerRecord(
            id=record["Id"],
            name=record["Name"],
            account_manager="Ada",
            signed_tos=True,
            skus={"SKU1": record["SKU1"], "SKU2": record["SKU2"], "SKU3": False},
        )
        envelope = Envelope(
            event_id=uuid.uuid4(), source="test", key=customer.id, payload=customer.model_dump()
        )
        await producer.send("licenses.inbound", key=customer.id.encode(), value=envelope.encode())
    await producer.flush()
    cid = bad["Id"]
    rows = await eventually(
        lambda: db.fetch("SELECT sku FROM licenses WHERE customer_id = $1", good["Id"]), lambda r: len(r) == 1
    )
    assert [r["sku"] for r in rows] == ["SKU2"]

    async def refused() -> list[DeadLetter]:
        return [
            letter
            async for _, _, letter in read_dead_letters(settings)
            if letter.key == cid.encode() and letter.reason == "rejected"
        ]

    [letter] = await eventually(refused, lambda found: len(found) == 1)
    assert letter.replay_topic == "licenses.inbound"
    assert letter.position.startswith("licenses.inbound[")
    assert await db.fetchval("SELECT count(*) FROM customers WHERE id = $1", cid) == 0
    assert await db.fetchval("SELECT count(*) FROM licenses WHERE customer_id = $1", cid) == 0

    # The operator fixes the record and sends it to the replay topic: it lands.
    fixed = letter.value.replace(b"\\u0000", b" ")
    await producer.send_and_wait(letter.replay_topic, key=letter.key, value=fixed)
    name = await eventually(
        lambda: db.fetchval("SELECT name FROM customers WHERE id = $1", cid), lambda n: n is not None
    )
    assert name == "nul corp"


async def test_sink_isolates_a_row_postgres_rejects(
    worker: Worker, settings: Settings, producer: AIOKafkaProducer, db: asyncpg.Pool
) -> None:
    """A replayed row PostgreSQL still refuses is dead-lettered again; its batch-mates are written."""
    cid = str(uuid.uuid4())

    def update(sku: str) -> bytes:
        return (
            f'{{"update_id": "{uuid.uuid4()}", "customer_id": "{cid}", "sku": "{sku}", "action": "grant",'
            f' "effective_at": "2026-01-01T00:00:00Z", "source_event_id": "{uuid.uuid4()}"}}'
        ).encode()

    bad = update("SKU\\u0000")
    good = update("SKU1")
    undecodable = b'{"update_id": "nope"}'
    for value in (bad, good, undecodable):
        await producer.send(topic="licenses.updates.replay", key=cid.encode(), value=value)
    await producer.flush()
    rejected = await eventually(lambda: letters_with_value(settings, bad), lambda found: len(found) == 1)
    assert [letter.reason for letter in rejected] == ["rejected"]
    assert "UntranslatableCharacterError" in rejected[0].detail or "0x00" in rejected[0].detail
    broken = await eventually(lambda: letters_with_value(settings, undecodable), lambda f: len(f) == 1)
    assert [letter.reason for letter in broken] == ["invalid"]
    rows = await eventually(
        lambda: db.fetch("SELECT sku, active FROM licenses WHERE customer_id = $1", cid),
        lambda r: len(r) == 1,
    )
    assert [(r["sku"], r["active"]) for r in rows] == [("SKU1", True)]


def test_cli_lists_dead_letters(services: Services, worker: Worker) -> None:
    env = {**os.environ, "STREAMAPP_BROKER_URL": services.broker_url}
    done = subprocess.run(
        [sys.executable, "-m", "streamapp", "dead-letters", "list", "--reason", "invalid"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dead letter(s)" in done.stdout
