"""The end offset after one 1,000-record batch, corrected by a fetch (streamapp/endoffsets.py)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamapp.deadletter_cli import bootstrap
from streamapp.endoffsets import fetched_end_offsets
from tests.integration.stack import Services


async def test_the_end_of_a_partition_whose_last_batch_holds_many_records(services: Services) -> None:
    topic = f"endoffsets-{uuid.uuid4().hex[:8]}"
    servers = bootstrap(services.broker_url)
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=500, max_batch_size=1 << 20)
    await producer.start()
    try:
        # Topic auto-creation: the first send creates it; then 1,000 records in one batch.
        await (await producer.send(topic, b"first", partition=0))
        sent = [await producer.send(topic, b"x" * 100, partition=0) for _ in range(1000)]
        offsets = [record.offset for record in await asyncio.gather(*sent)]
    finally:
        await producer.stop()
    assert offsets == list(range(1, 1001))
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await consumer.start()
    try:
        reported = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    corrected = await fetched_end_offsets(servers, {}, {tp: reported})
    assert corrected[tp] == 1001, reported
