"""The tasks pipeline's table: every task's set of events (facts), keyed by task id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from faust.types import TableT

if TYPE_CHECKING:
    from streamapp.host import Host

TABLE_NAME = "task-events"


def declare_task_facts(app: Host) -> TableT[bytes, Any]:
    # Raw task-id keys, like the inbound topic: co-partitioned, so table_route works.
    table = app.Table(TABLE_NAME, key_type=bytes, help="The set of events of each task (never counters).")
    return cast("TableT[bytes, Any]", table)
