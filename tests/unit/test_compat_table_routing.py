"""Contract: the private Faust/aiokafka names streamapp.compat.learn_topic_partitions relies on."""

from __future__ import annotations

import inspect

from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import Producer


def test_the_producer_names_table_routing_uses_exist() -> None:
    # Looked up by name: the private names are the contract under test.
    assert callable(vars(Producer)["_ensure_producer"])
    assert inspect.iscoroutinefunction(AIOKafkaProducer.partitions_for)
    assert list(inspect.signature(AIOKafkaProducer.partitions_for).parameters) == ["self", "topic"]
    # What Faust's key_store calls, and what failed without the topic's metadata.
    assert callable(vars(AIOKafkaProducer)["_partition"])
