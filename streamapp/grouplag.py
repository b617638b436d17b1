"""The consumer group's offsets, all workers together, as the broker holds them.

`GET /lag` reports the partitions one worker holds; the dashboard wants every
partition of every topic: the group's committed offsets (OffsetFetch) against
the end offsets (ListOffsets, checked by a fetch on the embedded broker, whose
listed ends fall short after multi-record batches: `endoffsets.fetched_end_offsets`).
The clients are opened on first use, kept while the worker runs and closed with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from mode import Service

from streamapp.compat import refresh_metadata
from streamapp.deadletter_cli import bootstrap
from streamapp.endoffsets import fetched_end_offsets
from streamapp.kafka_security import aiokafka_security
from streamapp.web.core import partition_lags

if TYPE_CHECKING:
    from streamapp.app import StreamApp


class GroupOffsets(Service):
    """Samples end and committed offsets of the topics the app declares; one sample at a time."""

    # A dashboard, or several, asking more often than this share one sample.
    min_interval = 2.0

    def __init__(self, app: StreamApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._last: tuple[float, list[dict[str, Any]]] | None = None

    async def on_stop(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        settings = self.app.settings
        servers, security = bootstrap(settings.kafka_url), aiokafka_security(settings)
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=servers, **security)
            try:
                await admin.start()
            except BaseException:
                await admin.close()  # a failed start has opened connections to close
                raise
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=servers, enable_auto_commit=False, group_id=None, **security
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._admin, self._consumer

    async def sample(self, topics: Collection[str]) -> list[dict[str, Any]]:
        """Per partition of `topics`: end, committed (None: never), lag (`web.core.partition_lags`)."""
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.min_interval:
                return self._last[1]
            rows = await self._sample(topics)
            self._last = (time.monotonic(), rows)
            return rows

    async def _sample(self, topics: Collection[str]) -> list[dict[str, Any]]:
        settings = self.app.settings
        admin, consumer = await self._clients()
        # Topics appear while the app runs (an output topic at its first message).
        await refresh_metadata(consumer)
        tps = [
            TopicPartition(topic, partition)
            for topic in sorted(topics)
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return []
        listed: dict[Any, int | None] = dict(await consumer.end_offsets(tps))
        ends = listed
        if settings.broker_check_end_offsets:
            servers, security = bootstrap(settings.kafka_url), aiokafka_security(settings)
            ends = await fetched_end_offsets(servers, security, listed)
        # Named partitions: the embedded broker does not list a group's offsets for "all topics".
        fetched = await admin.list_consumer_group_offsets(self.app.conf.id, partitions=tps)
        committed = {tp: meta.offset for tp, meta in fetched.items() if meta.offset >= 0}
        return partition_lags(tps, committed, {tp: end for tp, end in ends.items() if end is not None})
