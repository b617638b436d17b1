"""Writing table state from batched processing, where Faust's "current event" is not the right one."""

from __future__ import annotations

from typing import Any

from faust.types import TableT

from streamapp.typing import Event


def put(table: TableT[Any, Any], event: Event, key: Any, value: Any) -> None:
    """Set `table[key] = value` with the changelog on the partition of the event that carried `key`.

    Inside `take_events` Faust's current event is the last of the batch, so a
    plain `table[key] = value` would write the changelog to that event's
    partition. Keys must stay co-partitioned with their source topic, or
    recovery and `table_route` would look for them on the wrong worker.
    """
    table.data[key] = value
    table.send_changelog(event.message.partition, key, value)
