"""The license agents through Faust's `test_context()`: state, outputs and dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, cast

import pytest
from faust.types import TableT

from streamapp.app import StreamApp
from streamapp.envelope import Envelope
from streamapp.models.licenses import CustomerRecord
from tests.unit.recording import Recorder


@pytest.fixture
def recorder(app: StreamApp, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder().install(app, monkeypatch)


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
            await tested.put(value, key=key, wait=False)
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
    # app.tables is typed by the base collection, which does not declare `data`: this one is a Table.
    table = cast("TableT[Any, Any]", app.tables["license-state"])
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
    assert [d["reason"] for d in recorder.dead] == ["invalid", "invalid"]
    assert recorder.dead[0]["value"] == b"\x00garbage"
    assert recorder.dead[1]["event_id"] == str(bad_payload.event_id)
    assert [u["customer_id"] for _, u in recorder.published["licenses.updates"]] == ["c3"]


def update_json(sku: str, cid: str = "c1") -> bytes:
    return json.dumps(
        {
            "update_id": str(uuid.uuid4()),
            "customer_id": cid,
            "sku": sku,
            "action": "grant",
            "effective_at": "2026-01-01T00:00:00Z",
            "source_event_id": str(uuid.uuid4()),
        }
    ).encode()


async def test_sink_dead_letters_undecodable_updates(app: StreamApp, recorder: Recorder) -> None:
    async with app.agents["licenses.updates-sink"].test_context() as tested:
        await tested.put(update_json("SKU1"), key=b"c1", wait=False)
        await tested.put(b"{}", key=b"c1", wait=False)
        await asyncio.sleep(0.2)
    assert [w.customer_id for w in recorder.written] == ["c1"]
    assert [d["reason"] for d in recorder.dead] == ["invalid"]


class DataError(Exception):
    sqlstate = "22021"  # a data exception: retrying cannot help


async def test_sink_isolates_rows_the_database_rejects(app: StreamApp, recorder: Recorder) -> None:
    recorder.refuse_when = lambda item: item.sku == "BAD"
    recorder.refuse = DataError("invalid byte sequence")
    async with app.agents["licenses.updates-sink"].test_context() as tested:
        for sku in ("SKU1", "BAD", "SKU2"):
            await tested.put(update_json(sku), key=b"c1", wait=False)
        await asyncio.sleep(0.2)
    assert [item.sku for item in recorder.written] == ["SKU1", "SKU2"]
    assert [d["reason"] for d in recorder.dead] == ["rejected"]
    assert "DataError" in recorder.dead[0]["detail"]


async def test_records_write_postgres_before_state(app: StreamApp, recorder: Recorder) -> None:
    """The records agent writes its license changes and snapshots itself, one batch per write."""
    await run_records(app, [(b"c5", envelope("c5", SKU1=True, SKU3=True).encode())])
    kinds = [(type(row).__name__, getattr(row, "sku", None)) for row in recorder.written]
    assert kinds == [("LicenseUpdate", "SKU1"), ("LicenseUpdate", "SKU3"), ("CustomerSnapshot", None)]
    assert [u["sku"] for _, u in recorder.published["licenses.updates"]] == ["SKU1", "SKU3"]


async def test_records_dead_letter_a_record_postgres_refuses(app: StreamApp, recorder: Recorder) -> None:
    """A record whose rows PostgreSQL refuses is dead-lettered alone (replayable to the inbound
    topic); its batch-mate lands, and nothing of the refused one is published or kept in state."""
    recorder.refuse_when = lambda row: getattr(row, "sku", None) == "SKU2"
    recorder.refuse = DataError("invalid byte sequence")
    refused = envelope("c6", SKU1=True, SKU2=True)
    fine = envelope("c7", SKU1=True)
    await run_records(app, [(b"c6", refused.encode()), (b"c7", fine.encode())])
    assert [(row.customer_id, getattr(row, "sku", "customer")) for row in recorder.written] == [
        ("c7", "SKU1"),
        ("c7", "customer"),
    ]
    [letter] = recorder.dead
    assert letter["reason"] == "rejected"
    assert letter["value"] == refused.encode()
    assert "DataError" in letter["detail"]
    assert [k for k, _ in recorder.published["licenses.updates"]] == [b"c7"]
    table = cast("TableT[Any, Any]", app.tables["license-state"])
    assert b"c6" not in table.data
    assert set(table.data[b"c7"]["licensed"]) == {"SKU1"}


def test_decoded_states_trust_applied_states_until_a_rebalance(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamapp.rules.licenses import LicenseState
    from streamapp.runtime.effects import StateWrite
    from streamapp.tables.licenses import DecodedStates, encode_state

    table: dict[bytes, Any] = {}
    generation = [1]
    decoded = DecodedStates(table, lambda: generation[0], capacity=2)
    customer = envelope("c1", SKU1=True).payload

    def state_of(*licensed: str) -> LicenseState:
        return LicenseState.model_validate(
            {
                "customer": customer,
                "licensed": list(licensed),
                "last_event_id": str(uuid.uuid4()),
                "effective_at": "2026-01-01T00:00:00Z",
            }
        )

    applied, other = state_of("SKU1"), state_of("SKU2")
    table[b"c1"] = json.loads(encode_state(applied))
    decoded.applied([StateWrite(b"c1", applied, 0)])
    validations: list[Any] = []
    real = LicenseState.model_validate

    def counted(raw: Any) -> LicenseState:
        validations.append(raw)
        return real(raw)

    monkeypatch.setattr(LicenseState, "model_validate", counted)
    table[b"c1"] = {"not": "read"}  # a hit does not read the table at all
    assert decoded.get(b"c1") is applied
    assert validations == []
    # A rebalance: another worker may have changed the key; the table is read again.
    table[b"c1"] = json.loads(encode_state(other))
    generation[0] = 2
    assert decoded.get(b"c1") == other
    assert len(validations) == 1
    assert decoded.get(b"c1") == other  # and remembered
    assert len(validations) == 1
    assert decoded.get(b"missing") is None


def test_encoded_state_is_what_the_table_codec_reads_back() -> None:
    from streamapp.rules.licenses import LicenseState
    from streamapp.tables.licenses import dump_state, encode_state

    state = LicenseState.model_validate(
        {
            "customer": envelope("c1", SKU1=True, SKU3=True).payload,
            "licensed": ["SKU1", "SKU3"],
            "last_event_id": str(uuid.uuid4()),
            "effective_at": "2026-01-01T00:00:00+02:00",
            "recent_event_ids": [str(uuid.uuid4()) for _ in range(3)],
        }
    )
    assert json.loads(encode_state(state)) == dump_state(state)
    assert LicenseState.model_validate(json.loads(encode_state(state))) == state
