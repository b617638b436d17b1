"""The assistance agent via `test_context()`: deliveries out, record written, bad events dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from streamapp.app import StreamApp
from streamapp.models.assistance import AssistanceRequest
from tests.unit.recording import Recorder


@pytest.fixture
def recorder(app: StreamApp, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder().install(app, monkeypatch)


def request(channels: tuple[str, ...], request_id: uuid.UUID | None = None) -> AssistanceRequest:
    return AssistanceRequest(
        request_id=request_id or uuid.uuid4(),
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        topic="urgent",
        topic_as_sent="Urgent",
        description="help",
        channels=channels,
        routing_version="v1",
    )


async def run(app: StreamApp, values: list[bytes]) -> None:
    agent = app.agents["assistance.notify"]
    async with agent.test_context() as tested:
        for value in values:
            await tested.put(value, key=b"k", wait=False)
        await asyncio.sleep(0.2)  # one take_events window


async def test_one_delivery_per_channel_then_the_record(app: StreamApp, recorder: Recorder) -> None:
    rid = uuid.uuid4()
    first = request(("sales-slack", "pricing-email"), rid)
    await run(app, [first.model_dump_json().encode(), b"not json", first.model_dump_json().encode()])
    published = recorder.published["deliveries.requests"]
    assert [key for key, _ in published] == [b"assistance:sales-slack", b"assistance:pricing-email"] * 2
    ids = [d["delivery_id"] for _, d in published]
    assert ids[:2] == ids[2:]  # a redelivered event makes the same deliveries: nothing is sent twice
    assert {d["subject_id"] for _, d in published} == {str(rid)}
    assert published[0][1]["message"]["title"] == "Assistance needed: urgent"
    assert [r.request_id for r in recorder.written] == [rid, rid]  # an idempotent insert, twice
    assert [d["reason"] for d in recorder.dead] == ["invalid"]
    assert recorder.dead[0]["value"] == b"not json"
