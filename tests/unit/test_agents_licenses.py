"""The license agents through Faust's `test_context()`: state, outputs and dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from streamapp.app import StreamApp
from streamapp.envelope import Envelope
from streamapp.models.salesforce import CustomerRecord
from tests.unit.recording import Recorder


@pytest.fixture
def recorder(app: StreamApp, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr("streamapp.ingest.publish_all", rec.publish)
    monkeypatch.setattr(app.dead_letters, "send_event", rec.dead_letter)
    return rec


def envelope(cid: str, event_id: uuid.UUID | None = None, **skus: bool) -> Envelope:
    customer = CustomerRecord(
        id=cid,
        name="acme.com",
        account_manager="Ada",
        signed_tos=True,
        skus={"SKU1": False, "SKU2": False, "SKU3": False, **skus},
    )
    return Envelope(event_id=event_id or uuid.uuid4(), source="t", key=cid, payload=customer.model_dump())


async def run_records(app: StreamApp, values: list[tuple[bytes, bytes]]) -> None:
    agent = app.agents["licenses.records"]
    async with agent.test_context() as tested:
        for key, value in values:
            await tested.put(value, key=key)
        await asyncio.sleep(0.2)  # one take_events window


async def test_records_become_updates_and_state(app: StreamApp, recorder: Recorder) -> None:
    first = envelope("c1", SKU1=True, SKU2=True)
    second = envelope("c1", SKU2=True)
    other = envelope("c2", SKU3=True)
    await run_records(app, [(b"c1", first.encode()), (b"c1", second.encode()), (b"c2", other.encode())])
    updates = [(k, u["sku"], u["action"]) for k, u in recorder.published["licenses.updates"]]
    assert updates == [
        (b"c1", "SKU1", "grant"),
        (b"c1", "SKU2", "grant"),
        (b"c1", "SKU1", "revoke"),
        (b"c2", "SKU3", "grant"),
    ]
    assert [k for k, _ in recorder.published["licenses.customers"]] == [b"c1", b"c2"]
    table = app.tables["license-state"]
    assert set(table.data[b"c1"]["licensed"]) == {"SKU2"}
    assert table.data[b"c1"]["last_event_id"] == str(second.event_id)
    assert set(table.data[b"c2"]["licensed"]) == {"SKU3"}
    assert recorder.dead == []


async def test_redelivered_record_emits_nothing(app: StreamApp, recorder: Recorder) -> None:
    event_id = uuid.uuid4()
    again = envelope("c9", event_id, SKU1=True).encode()
    await run_records(app, [(b"c9", again), (b"c9", again)])
    assert len(recorder.published["licenses.updates"]) == 1


async def test_bad_records_are_dead_lettered_and_the_rest_processed(
    app: StreamApp, recorder: Recorder
) -> None:
    good = envelope("c3", SKU1=True)
    bad_payload = Envelope(event_id=uuid.uuid4(), source="t", key="c4", payload={"id": "c4"})
    await run_records(app, [(b"x", b"\x00garbage"), (b"c4", bad_payload.encode()), (b"c3", good.encode())])
    assert [d["reason"] for d in recorder.dead] == ["invalid_record", "invalid_record"]
    assert recorder.dead[0]["value"] == b"\x00garbage"
    assert recorder.dead[1]["event_id"] == str(bad_payload.event_id)
    assert [u["customer_id"] for _, u in recorder.published["licenses.updates"]] == ["c3"]


async def test_sink_dead_letters_undecodable_updates(
    app: StreamApp, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[Any] = []

    async def fake_write(items: Any) -> None:
        written.extend(items)

    sink_agent = app.agents["licenses.updates-sink"]
    # The sink object is bound in the agent's closure; reach it through the pipeline's factory.
    from streamapp.sink import PostgresSink

    monkeypatch.setattr(PostgresSink, "_write", lambda self, items: fake_write(items))
    update = {
        "update_id": str(uuid.uuid4()),
        "customer_id": "c1",
        "sku": "SKU1",
        "action": "grant",
        "effective_at": "2026-01-01T00:00:00Z",
        "source_event_id": str(uuid.uuid4()),
    }
    async with sink_agent.test_context() as tested:
        await tested.put(json.dumps(update).encode(), key=b"c1")
        await tested.put(b"{}", key=b"c1")
        await asyncio.sleep(0.2)
    assert [w.customer_id for w in written] == ["c1"]
    assert [d["reason"] for d in recorder.dead] == ["undecodable"]


async def test_sink_isolates_rows_the_database_rejects(
    app: StreamApp, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamapp.sink import PostgresSink

    written: list[str] = []

    class DataError(Exception):
        sqlstate = "22021"  # a data exception: retrying cannot help

    async def fake_write(self: PostgresSink[Any], items: Any) -> None:
        if any(item.sku == "BAD" for item in items):
            raise DataError("invalid byte sequence")
        written.extend(item.sku for item in items)

    monkeypatch.setattr(PostgresSink, "_write", fake_write)

    def update(sku: str) -> bytes:
        return json.dumps(
            {
                "update_id": str(uuid.uuid4()),
                "customer_id": "c1",
                "sku": sku,
                "action": "grant",
                "effective_at": "2026-01-01T00:00:00Z",
                "source_event_id": str(uuid.uuid4()),
            }
        ).encode()

    async with app.agents["licenses.updates-sink"].test_context() as tested:
        for sku in ("SKU1", "BAD", "SKU2"):
            await tested.put(update(sku), key=b"c1")
        await asyncio.sleep(0.2)
    assert written == ["SKU1", "SKU2"]
    assert [d["reason"] for d in recorder.dead] == ["sink_rejected"]
    assert "DataError" in recorder.dead[0]["detail"]
