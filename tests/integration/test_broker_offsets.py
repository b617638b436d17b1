"""What the embedded broker (Tansu 0.6.0) answers for a partition's end offset after multi-record batches.

ListOffsets(LATEST) answers the last batch's base offset + 1, as if that batch
held one record; the fetch response's high watermark is right. Faust's table
recovery and `end_offsets` callers trust ListOffsets. Strict xfail: it turns
into a failure the day the broker answers correctly (then drop the caveat in
the README).
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamapp.deadletter_cli import bootstrap
from tests.integration.stack import Services


async def produce_batches(servers: list[str], topic: str, batches: list[int]) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=50)
    await producer.start()
    offsets: list[int] = []
    try:
        for size in batches:
            # Sent together within the linger: one batch of `size` records.
            futures = [await producer.send(topic, b"x", partition=0) for _ in range(size)]
            offsets += [(await f).offset for f in futures]
    finally:
        await producer.stop()
    return offsets


async def ends(servers: list[str], tp: TopicPartition) -> tuple[int, int]:
    """(ListOffsets LATEST, the fetch's high watermark after reading everything)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        listed = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        while (await consumer.getmany(tp, timeout_ms=1000)).get(tp):
            pass
        highwater = consumer.highwater(tp)
        assert highwater is not None
        return listed, highwater
    finally:
        await consumer.stop()


async def test_single_record_batches_are_counted_right(services: Services) -> None:
    servers = bootstrap(services.broker_url)
    topic = f"offsets-{uuid.uuid4().hex[:8]}"
    assert await produce_batches(servers, topic, [1, 1, 1]) == [0, 1, 2]
    assert await ends(servers, TopicPartition(topic, 0)) == (3, 3)


@pytest.mark.xfail(strict=True, reason="Tansu 0.6.0: ListOffsets counts the last batch as one record")
async def test_end_offset_after_multi_record_batches(services: Services) -> None:
    servers = bootstrap(services.broker_url)
    topic = f"offsets-{uuid.uuid4().hex[:8]}"
    # 10 records in one batch, 1 alone, 5 in one batch: offsets 0-15.
    assert await produce_batches(servers, topic, [10, 1, 5]) == list(range(16))
    listed, highwater = await ends(servers, TopicPartition(topic, 0))
    assert highwater == 16  # the fetch's high watermark is right
    assert listed == 16  # Tansu 0.6.0 answers 12 (= base offset 11 of the last batch + 1)


async def test_fetched_end_offsets_correct_the_listed_ones(services: Services) -> None:
    """What recovery, /lag and the drain use (streamapp.endoffsets.fetched_end_offsets): the true end."""
    from streamapp.endoffsets import fetched_end_offsets

    servers = bootstrap(services.broker_url)
    topic = f"offsets-{uuid.uuid4().hex[:8]}"
    await produce_batches(servers, topic, [10, 1, 5])
    empty = f"offsets-{uuid.uuid4().hex[:8]}"
    await produce_batches(servers, empty, [])
    tp, none = TopicPartition(topic, 0), TopicPartition(empty, 0)
    listed = {tp: (await ends(servers, tp))[0], none: 0}
    assert await fetched_end_offsets(servers, {}, listed) == {tp: 16, none: 0}
