"""End offsets as the records say, not as the embedded broker's ListOffsets says.

Tansu 0.6 answers ListOffsets(latest) with the base offset of a partition's last
record batch plus one, however many records that batch holds: 1,000 records
produced in one batch report an end offset of 1 (the records themselves carry
offsets 0-999). Faust's table recovery reads a changelog only up to that end, so a
worker recovering a changelog whose last batch held many records (`put_all`
publishes a batch's states together) stopped short of them; and a backlog counted
against it looks done while the last batch is unprocessed. The true end is found by
reading the last batch: fetch from the reported end - 1 and take the highest offset
returned, plus one. On a correct broker that is the reported end (one fetch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamapp.kafka_security import bootstrap


class EndOffsets:
    """A group-less consumer that only looks at the last batch of partitions."""

    def __init__(self, broker_url: str) -> None:
        self.servers = bootstrap(broker_url)
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> EndOffsets:
        return self

    async def __aexit__(self, *exc: object) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14's stop() can raise the CancelledError of its own fetch task;
            # swallow that one only, never a cancellation of the caller.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise

    async def _started(self) -> AIOKafkaConsumer:
        # Started only when a partition needs a look: most calls (empty changelogs) need none.
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.servers, enable_auto_commit=False, group_id=None
            )
            await self._consumer.start()
        return self._consumer

    async def correct(self, reported: Mapping[Any, int | None], timeout: float = 5.0) -> dict[Any, int]:
        """`reported` end offsets per partition (Faust's TP or aiokafka's), corrected upwards."""
        result = {tp: end or 0 for tp, end in reported.items()}
        wanted = {TopicPartition(tp.topic, tp.partition): tp for tp, end in result.items() if end > 0}
        if not wanted:
            return result
        consumer = await self._started()
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, result[wanted[tp]] - 1)
        pending = set(wanted)
        loop_until = timeout
        while pending and loop_until > 0:
            batches = await consumer.getmany(*pending, timeout_ms=200)
            loop_until -= 0.2
            for tp, records in batches.items():
                if records:
                    original = wanted[tp]
                    result[original] = max(result[original], records[-1].offset + 1)
                    pending.discard(tp)
        return result
