"""Readiness: what a process waits for; no write to a topic not seen yet (streamapp/readiness.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.exceptions import NotReady

from streamapp import readiness as readiness_module
from streamapp.readiness import Readiness, TopicNotReady
from streamapp.web import core


class Broker:
    """The partition counts the broker reports, and how often it was asked."""

    def __init__(self, counts: dict[str, int] | None) -> None:
        self.counts = counts
        self.asked = 0

    async def __call__(self, app: Any) -> dict[str, int]:
        self.asked += 1
        if self.counts is None:
            raise NotReady("Producer service not yet started")
        return dict(self.counts)


def fake_app(role: str = "worker", *, db_ok: bool = True, producer_started: bool = True) -> Any:
    async def ping() -> bool:
        return db_ok

    return SimpleNamespace(
        role=role,
        declared_topics={"licenses.inbound": None, "streamapp.dead-letters": None},
        tables=SimpleNamespace(changelog_topics={"streamapp-license-state-changelog"}),
        settings=SimpleNamespace(topic_partitions=4, kafka_url="kafka://127.0.0.1:1"),
        db=SimpleNamespace(ping=ping),
        producer=SimpleNamespace(started=producer_started),
    )


ALL = {"licenses.inbound": 4, "streamapp.dead-letters": 4, "streamapp-license-state-changelog": 4}


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker({})
    monkeypatch.setattr(readiness_module, "broker_partition_counts", fake)
    monkeypatch.setattr(readiness_module, "RECHECK_INTERVAL", 0.05)
    return fake


async def test_a_write_to_a_missing_topic_is_refused_until_it_exists(broker: Broker) -> None:
    readiness = Readiness(fake_app())
    with pytest.raises(TopicNotReady) as refused:
        await readiness.require_topic("licenses.inbound")
    assert (refused.value.status, refused.value.reason, refused.value.retry_after) == (503, "not_ready", 2)
    assert refused.value.retriable
    assert "licenses.inbound" in refused.value.detail
    # Asked again at once: the broker is not asked again (webhooks may ask per request).
    with pytest.raises(TopicNotReady):
        await readiness.require_topic("licenses.inbound")
    assert broker.asked == 1
    broker.counts = {"licenses.inbound": 4}
    await asyncio.sleep(0.06)
    await readiness.require_topic("licenses.inbound")
    # Seen once with the right count: no more questions for it.
    await readiness.require_topic("licenses.inbound")
    assert broker.asked == 2
    # The other topics are still missing: not ready yet.
    assert await readiness.check_topics() == [
        "topics to be created: streamapp-license-state-changelog, streamapp.dead-letters"
    ]


async def test_a_topic_with_another_partition_count_is_never_written(broker: Broker) -> None:
    broker.counts = {**ALL, "licenses.inbound": 3}  # e.g. auto-created by the broker earlier
    readiness = Readiness(fake_app())
    problems = await readiness.check_topics()
    assert problems == [
        "topic licenses.inbound has 3 partitions, STREAMAPP_TOPIC_PARTITIONS is 4"
        " (align the setting or recreate the topic)"
    ]
    with pytest.raises(TopicNotReady):
        await readiness.require_topic("licenses.inbound")
    await readiness.require_topic("streamapp.dead-letters")


async def test_a_topic_that_vanishes_is_refused_again(broker: Broker) -> None:
    """The embedded broker forgets its topics at a restart: writes wait for them again."""
    broker.counts = ALL
    readiness = Readiness(fake_app())
    assert await readiness.check_topics() == []
    await readiness.require_topic("licenses.inbound")
    broker.counts = {}
    await asyncio.sleep(0.06)
    assert await readiness.check_topics() != []
    with pytest.raises(TopicNotReady):
        await readiness.require_topic("licenses.inbound")


async def test_an_ingest_process_checks_only_the_topics_it_writes(broker: Broker) -> None:
    broker.counts = {"licenses.inbound": 4, "streamapp.dead-letters": 4}  # no changelog yet
    assert await Readiness(fake_app("ingest")).check_topics() == []


async def test_the_producer_not_started(broker: Broker) -> None:
    broker.counts = None
    assert await Readiness(fake_app("ingest")).check_topics() == ["the producer to start"]


async def test_report_says_what_a_worker_waits_for(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    recovered = False
    monkeypatch.setattr(readiness_module, "tables_recovered", lambda app: recovered)

    async def reachable(url: str) -> bool:
        return True

    monkeypatch.setattr(core, "broker_reachable", reachable)
    broker.counts = ALL
    readiness = Readiness(fake_app())
    ready, body = await readiness.report()
    assert not ready
    assert body == {
        "status": "starting",
        "checks": {"broker": True, "database": True, "topics": True, "tables_recovered": False},
        "waiting_for": ["the consumer group: join, partition assignment and table recovery"],
    }
    recovered = True
    ready, body = await readiness.report()
    assert (ready, body["status"], body["waiting_for"]) == (True, "ready", [])


async def test_an_ingest_process_without_postgres_stays_ready_degraded(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reachable(url: str) -> bool:
        return True

    monkeypatch.setattr(core, "broker_reachable", reachable)
    broker.counts = ALL
    ready, body = await Readiness(fake_app("ingest", db_ok=False)).report()
    assert (ready, body["status"]) == (True, "degraded")
    ready, body = await Readiness(fake_app("ingest", producer_started=False)).report()
    assert (ready, body["status"], body["waiting_for"]) == (False, "starting", ["the producer to connect"])
