"""`runtime.produce.send_batches`: each output on the partition `send` picks, in order, in few batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from streamapp.app import key_partitioner
from streamapp.runtime.effects import Output
from streamapp.runtime.produce import send_batches

PARTITIONS = {"t.a": {0, 1, 2, 3}, "t.b": {0, 1}}


class KafkaProducer:
    """The aiokafka producer calls `send_batches` makes, recording each batch sent."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return PARTITIONS[topic]

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        built = MemoryRecords(bytes(batch._build())).next_batch()  # noqa: SLF001 - reading back the bytes
        assert built is not None
        self.sent.append((topic, partition, [(r.key, r.value) for r in built]))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class FaustProducer:
    def __init__(self, kafka: KafkaProducer) -> None:
        self.kafka = kafka

    def _ensure_producer(self) -> KafkaProducer:
        return self.kafka


async def test_outputs_land_on_the_key_partition_in_order_in_few_batches() -> None:
    kafka = KafkaProducer(batch_size=16384)
    outputs = [Output("t.a", f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(50)]
    outputs += [Output("t.b", b"k1", b"pinned", partition=1), Output("t.b", None, b"no key", partition=0)]
    await send_batches(FaustProducer(kafka), outputs, partitioner=key_partitioner, max_request_bytes=1 << 20)
    received: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    for topic, partition, records in kafka.sent:
        received.setdefault((topic, partition), []).extend(records)
    expected: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    for o in outputs:
        # What AIOKafkaProducer._partition computes: the partitioner over list(partitions_for_topic).
        partition = o.partition if o.partition is not None else key_partitioner(o.key, [0, 1, 2, 3], [])
        expected.setdefault((o.topic, partition), []).append((o.key, o.value))
    assert received == expected
    assert len(kafka.sent) == len(expected)  # one batch per topic partition


async def test_a_full_batch_is_sent_and_the_next_one_started() -> None:
    kafka = KafkaProducer(batch_size=300)
    outputs = [Output("t.b", b"k", bytes([65 + i]) * 100, partition=0) for i in range(10)]
    await send_batches(FaustProducer(kafka), outputs, partitioner=key_partitioner, max_request_bytes=1 << 20)
    assert len(kafka.sent) > 2
    assert [v for _, _, records in kafka.sent for _, v in records] == [o.value for o in outputs]


async def test_a_message_over_the_request_limit_is_refused_before_anything_is_sent() -> None:
    kafka = KafkaProducer(batch_size=16384)
    outputs = [Output("t.b", b"k", b"small", partition=0), Output("t.b", b"k", b"x" * 2000, partition=0)]
    with pytest.raises(MessageSizeTooLargeError):
        await send_batches(FaustProducer(kafka), outputs, partitioner=key_partitioner, max_request_bytes=1000)
    assert kafka.sent == []
