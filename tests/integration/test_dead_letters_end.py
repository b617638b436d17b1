"""`streamapp dead-letters` reads to the true end of the topic, also after a last batch of letters."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from streamapp.deadletter_cli import read_dead_letters
from streamapp.deadletters import DEAD_LETTER_TOPIC, DeadLetter
from streamapp.kafka_security import bootstrap
from streamapp.settings import Settings
from tests.integration.stack import Services


async def test_the_last_batch_of_letters_is_read(services: Services) -> None:
    pipeline = f"batch-{uuid.uuid4().hex[:8]}"
    letters = [
        DeadLetter(pipeline=pipeline, reason="test", detail=str(i), topic="t", value_b64="", replay_topic="t")
        for i in range(5)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(services.broker_url), linger_ms=50)
    await producer.start()
    try:
        # One batch on one partition: the embedded broker then lists the end as
        # the batch's base offset + 1 (test_broker_offsets.py).
        futures = [await producer.send(DEAD_LETTER_TOPIC, letter.encode(), partition=0) for letter in letters]
        for future in futures:
            await future
    finally:
        await producer.stop()
    settings = Settings(broker_url=services.broker_url, database_url=services.database_url)
    read = [
        letter.detail async for _, _, letter in read_dead_letters(settings) if letter.pipeline == pipeline
    ]
    assert read == ["0", "1", "2", "3", "4"]
