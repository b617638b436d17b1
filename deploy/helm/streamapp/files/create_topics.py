"""Create streamapp's own (non-internal) Kafka topics with the configured partitions.

Faust declares only its internal topics (table changelogs, its leader topic) with
STREAMAPP_TOPIC_PARTITIONS. The topics a pipeline names with `app.topic(...)`
are left to the broker's auto-creation, which uses the broker's `num.partitions`
(and fails when auto-creation is off). A table's source topic and its changelog
must have the same partition count, so this creates the missing ones and checks
the existing ones. Run with the streamapp image (it ships aiokafka):

    STREAMAPP_BROKER_URL=kafka://kafka:9092 STREAMAPP_TOPIC_PARTITIONS=8 \
    STREAMAPP_TOPIC_REPLICATION=3 TOPICS=licenses.inbound,licenses.updates \
    python create_topics.py

Exit status 1 if a topic could not be created or has another partition count.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TOPIC_ALREADY_EXISTS = 36


def bootstrap_servers(broker_url: str) -> str:
    """`kafka://a:9092;kafka://b:9092` (Faust style) -> `a:9092,b:9092`."""
    servers = []
    for part in broker_url.replace(";", ",").split(","):
        part = part.strip()
        if part:
            servers.append(part.split("://", 1)[-1].rstrip("/"))
    return ",".join(servers)


async def main() -> int:
    names = [name.strip() for name in os.environ["TOPICS"].split(",") if name.strip()]
    partitions = int(os.environ.get("STREAMAPP_TOPIC_PARTITIONS", "4"))
    replication = int(os.environ.get("STREAMAPP_TOPIC_REPLICATION", "1"))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(os.environ["STREAMAPP_BROKER_URL"]),
        request_timeout_ms=30000,
    )
    await admin.start()
    failed = False
    try:
        # list_topics asks for all topics, which never auto-creates one.
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication) for name in missing]
            )
            for topic, error_code, *rest in response.topic_errors:
                if error_code and error_code != TOPIC_ALREADY_EXISTS:
                    message = rest[0] if rest else ""
                    print(f"{topic}: create failed, error {error_code} {message}", flush=True)
                    failed = True
                else:
                    print(f"{topic}: created ({partitions} partitions, rf {replication})")
        # Only topics known to exist are described: describing a missing one could
        # auto-create it with the broker's default partition count.
        present = set(await admin.list_topics())
        for meta in await admin.describe_topics([n for n in names if n in present]):
            count = len(meta["partitions"])
            if count != partitions:
                print(
                    f"{meta['topic']}: has {count} partitions, STREAMAPP_TOPIC_PARTITIONS is"
                    f" {partitions}; align the setting or recreate the topic",
                    flush=True,
                )
                failed = True
            else:
                print(f"{meta['topic']}: ok ({count} partitions)")
        for name in names:
            if name not in present:
                print(f"{name}: missing after create", flush=True)
                failed = True
    finally:
        await admin.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
