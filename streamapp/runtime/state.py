"""Writing table state from batched processing: durably, and on the right changelog partition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from faust.serializers.codecs import get_codec
from faust.tables.base import Collection
from faust.types import TableT

from streamapp.runtime.effects import Output, StateWrite


def changelog_messages(
    table: TableT[Any, Any],
    writes: Sequence[StateWrite],
    encode: Callable[[Any], bytes] | None = None,
) -> list[Output]:
    """The changelog records of `writes`, each on its source event's partition.

    Two things a plain `table[key] = value` gets wrong here, which is why the
    runtime publishes these and waits for the acks before it acks the batch:

    - Durability. Faust hands changelog records to a background buffer
      (`send_soon`) and may commit the source offsets before that buffer is
      out: its pre-commit flush gives up after 0.1 s without progress. A
      SIGKILL in that window loses the new state of events that will never
      be redelivered (the tasks crash test lost facts this way).
    - Partition. In a batch, Faust's current event is not the one that carried
      the key, so the changelog could go to another event's partition. Keys must
      stay co-partitioned with their source topic, or recovery and
      `table_route` would look for them on the wrong worker.
    """
    codecs = cast(Collection, table)  # TableT does not declare the serializers
    topic = table.changelog_topic
    name = topic.get_topic_name()
    messages: list[Output] = []
    # Keys of bytes under the raw codec (every table of ours) are their own encoding:
    # Faust's `prepare_key` would return them unchanged, after ~3 us of registry
    # lookups per key (a unit test holds the two equal).
    raw_keys = codecs.key_serializer == "raw"
    for write in writes:
        key = write.key
        if raw_keys and type(key) is bytes:
            raw_key = key
        else:
            raw_key, _ = topic.prepare_key(key, codecs.key_serializer)
        if encode is not None:  # the processor's encoding, in the table's value codec
            raw_value = encode(write.value)
        else:
            raw_value, _ = topic.prepare_value(write.value, codecs.value_serializer)
        messages.append(Output(name, raw_key, raw_value, write.partition))
    return messages


def local_value(table: TableT[Any, Any], write: StateWrite, raw_value: bytes, encoded: bool) -> Any:
    """What a memory store keeps for `write`: the value as the table's codec reads `raw_value` back."""
    if not encoded:
        return write.value
    serializer = cast(Collection, table).value_serializer
    return get_codec(serializer).loads(raw_value) if serializer else raw_value
