"""Writing table state from batched processing: durably, and on the right changelog partition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from faust.tables.base import Collection
from faust.types import TableT

from streamapp.compat import store_local
from streamapp.ingest import publish_durably
from streamapp.settings import Settings
from streamapp.typing import Event


async def put_all(
    settings: Settings, table: TableT[Any, Any], writes: Sequence[tuple[Event, Any, Any]]
) -> None:
    """Set `table[key] = value` for each (event, key, value), once the broker holds the changelog.

    Two things a plain `table[key] = value` gets wrong here:

    - Durability. Faust hands changelog records to a background buffer
      (`send_soon`) and may commit the source offsets before that buffer is
      out: its pre-commit flush gives up after 0.1 s without progress. A
      SIGKILL in that window loses the new state of events that will never
      be redelivered (the tasks crash test lost facts this way). So the
      changelog is published and acknowledged here, before the caller acks.
    - Partition. In a batch, Faust's current event is not the one that carried
      the key, so the changelog could go to another event's partition. Keys must
      stay co-partitioned with their source topic, or recovery and
      `table_route` would look for them on the wrong worker.

    Callers publish their outputs first and the state last: a crash in
    between redelivers the events, and the old state recomputes the outputs.
    """
    if not writes:
        return
    codecs = cast(Collection, table)  # TableT does not declare the serializers
    topic = table.changelog_topic
    messages: list[tuple[bytes, bytes]] = []
    for _, key, value in writes:
        raw_key, _ = topic.prepare_key(key, codecs.key_serializer)
        raw_value, _ = topic.prepare_value(value, codecs.value_serializer)
        messages.append((raw_key, raw_value))
    partitions = [event.message.partition for event, _, _ in writes]
    await publish_durably(settings, topic, messages, partitions=partitions)
    # Into the named partition's local store: a RocksDB store would otherwise pick
    # the partition of Faust's current event (streamapp/compat.py, DurableStore).
    for (_, key, value), (raw_key, raw_value), partition in zip(writes, messages, partitions, strict=True):
        store_local(table, partition, key, value, raw_key, raw_value)
