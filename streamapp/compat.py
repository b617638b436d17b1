"""Every access to private Faust / aiokafka internals, each next to the upstream behaviour it works around.

Outside this module, private access is a lint error (ruff SLF001); the contract
test `tests/unit/test_compat.py` imports the installed Faust and aiokafka and
fails when one of the names used here is renamed or changes its signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

# --- End offsets from the fetch, not only ListOffsets (issue 14) -------------------
#
# Faust's table recovery (and `/lag`) ask `AIOKafkaConsumerThread._highwaters`, which
# asks aiokafka's `end_offsets` (ListOffsets, LATEST). The embedded Tansu 0.6.0
# answers that with the last record *batch's* base offset + 1: after batches of 10,
# 1 and 5 records it says 12 where the fetch's high watermark says 16. A worker that
# takes over a changelog partition then stops recovering before the changelog's
# tail and serves stale table values (tests/integration/test_broker_offsets.py,
# test_scale_out.py). A fetch from the last listed offset returns the broker's high
# watermark; the larger of the two is the end on Tansu and on Kafka alike (where
# they agree, or the fetch saw newer writes).

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
        await probe.stop()
    return result


def use_fetched_end_offsets() -> None:
    """Make Faust's consumer report end offsets checked by a fetch (idempotent)."""
    from faust.transport.drivers import aiokafka as driver

    thread_cls: Any = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_streamapp_fetched_ends", False):
        return
    listed_highwaters = thread_cls._highwaters

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        listed: Mapping[Any, int] = await listed_highwaters(self, partitions)
        if self.consumer.in_transaction:
            return listed
        conf = self.app.conf
        servers = driver.server_list(self.transport.url, self.transport.default_port)
        auth = driver.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        try:
            checked = await fetched_end_offsets(servers, auth, listed)
        except Exception as exc:  # a failed check must not fail recovery: the listed ends still work
            self.log.warning("could not check end offsets with a fetch (%r); using ListOffsets", exc)
            return listed
        return {tp: end for tp, end in checked.items() if end is not None}

    thread_cls._highwaters = _highwaters
    thread_cls._streamapp_listed_highwaters = listed_highwaters  # for the contract test
    thread_cls._streamapp_fetched_ends = True
