"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations

from typing import Any

# --- Faust's table routing: GET /tables/{table}/{key} (issue 12) ------------------------


async def learn_topic_partitions(app: Any, topic: str) -> None:
    """Make the producer's metadata know `topic` before Faust routes a key of it.

    `app.table_route` finds a key's worker through `Producer.key_partition`, which
    calls aiokafka's private `AIOKafkaProducer._partition` on the producer's cached
    metadata. For a changelog topic this process has not produced to yet, that
    cache has no entry, `partitions_for_topic` returns None and the route raised
    TypeError (a 500 found by the fuzz campaign). `partitions_for` (public) fetches
    the topic's metadata; Faust offers no public way to the aiokafka producer.
    """
    producer = app.producer._ensure_producer()
    await producer.partitions_for(topic)
