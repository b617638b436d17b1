"""`streamapp topics [--create]`: the topics the app declares, listed or created before workers start."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamapp.app import StreamApp, create_app
from streamapp.kafka_security import aiokafka_security, bootstrap
from streamapp.settings import Settings

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class DeclaredTopic:
    name: str
    # "pipeline": declared by a pipeline or the core; created here.
    # "changelog": a table's changelog; Faust creates it (compacted, with the
    # table's retention), here its partition count is only checked.
    kind: Literal["pipeline", "changelog"]


def declared_topics(app: StreamApp) -> list[DeclaredTopic]:
    """Every topic of the app, from the declarations themselves (nothing listed by hand)."""
    topics = [DeclaredTopic(name, "pipeline") for name in sorted(app.declared_topics)]
    topics += [DeclaredTopic(name, "changelog") for name in sorted(app.tables.changelog_topics)]
    return topics


async def create_topics(settings: Settings, topics: list[DeclaredTopic]) -> int:
    """Create the missing pipeline topics; 1 if any topic has another partition count.

    Before any worker or ingest process runs, so no topic is ever auto-created
    by the broker with its own default partition count (a table's source topic
    must match its changelog, else Faust's PartitionsMismatch).
    """
    partitions, replication = settings.topic_partitions, settings.topic_replication
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap(settings.kafka_url),
        request_timeout_ms=30000,
        **aiokafka_security(settings),
    )
    await admin.start()
    failed = False
    try:
        # list_topics asks for all topics, which never auto-creates one.
        existing = set(await admin.list_topics())
        missing = [t.name for t in topics if t.kind == "pipeline" and t.name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication) for name in missing]
            )
            for name, error_code, *rest in response.topic_errors:
                if error_code and error_code != TOPIC_ALREADY_EXISTS:
                    print(f"{name}: create failed, error {error_code} {rest[0] if rest else ''}", flush=True)
                    failed = True
                else:
                    print(f"{name}: created ({partitions} partitions, replication {replication})")
        present = set(await admin.list_topics())
        # Only topics known to exist are described: describing a missing one could
        # auto-create it with the broker's default partition count.
        for meta in await admin.describe_topics([t.name for t in topics if t.name in present]):
            count = len(meta["partitions"])
            if count != partitions:
                print(
                    f"{meta['topic']}: has {count} partitions, STREAMAPP_TOPIC_PARTITIONS is {partitions};"
                    " align the setting or recreate the topic",
                    flush=True,
                )
                failed = True
            else:
                print(f"{meta['topic']}: ok ({count} partitions)")
        for topic in topics:
            if topic.kind == "pipeline" and topic.name not in present:
                print(f"{topic.name}: missing after create", flush=True)
                failed = True
    finally:
        await admin.close()
    return 1 if failed else 0


def main_topics(settings: Settings, *, create: bool) -> int:
    app = create_app(settings)
    topics = declared_topics(app)
    if create:
        return asyncio.run(create_topics(settings, topics))
    for topic in topics:
        print(f"{topic.name}\t{topic.kind}")
    return 0
