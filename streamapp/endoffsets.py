"""A partition's end offset as the records say, for a broker whose ListOffsets says less.

The embedded broker (Tansu 0.6.0) answers ListOffsets(LATEST) with the base
offset of a partition's last record batch plus one, however many records that
batch holds: after batches of 10, 1 and 5 records it says 12 where the records
end at 16, after one batch of 1,000 it says 1 (tests/integration/test_broker_offsets.py,
docs/upstream/tansu-end-offsets.md). A fetch from the last offset it admits to
returns the partition's high watermark, which is right; the larger of the two is
the end on Tansu and on Kafka alike (where they agree, or the fetch saw newer
writes). `compat.use_fetched_end_offsets` puts this behind Faust's consumer, so
table recovery, `/lag`, the drain and the recorded changelog positions all use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

# Fetches of at most 500 ms each until every partition answered with a high watermark.
_FETCH_ROUNDS = 6


async def fetched_end_offsets(
    servers: list[str], auth: Mapping[str, Any], listed: Mapping[Any, int | None]
) -> dict[Any, int | None]:
    """`listed` (tp -> ListOffsets end), each raised to the high watermark a fetch reports."""
    wanted = {tp: end for tp, end in listed.items() if end is not None and end > 0}
    result: dict[Any, int | None] = dict(listed)
    if not wanted:
        return result
    probe = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, **auth)
    await probe.start()
    try:
        tps = {TopicPartition(tp[0], tp[1]): tp for tp in wanted}
        probe.assign(list(tps))
        for tp, original in tps.items():
            # From the last record the broker admits to: the fetch answers with the
            # batch holding it and the partition's high watermark.
            probe.seek(tp, wanted[original] - 1)
        pending = set(tps)
        for _ in range(_FETCH_ROUNDS):
            await probe.getmany(*pending, timeout_ms=500, max_records=1)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    result[tps[tp]] = max(wanted[tps[tp]], highwater)
                    pending.discard(tp)
            if not pending:
                break
    finally:
        await stop_quietly(probe)
    return result


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """`consumer.stop()`, but aiokafka 0.14's stop() can raise the CancelledError of its own
    fetch task: swallow that one only, never a cancellation of the caller."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
