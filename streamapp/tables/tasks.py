"""The tasks pipeline's table: every task's set of events (facts), keyed by task id."""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TableT

TABLE_NAME = "task-events"


def declare_task_facts(app: faust.App) -> TableT[bytes, Any]:
    # Raw task-id keys, like the inbound topic: co-partitioned, so table_route works.
    table = app.Table(TABLE_NAME, key_type=bytes, help="The set of events of each task (never counters).")
    return cast("TableT[bytes, Any]", table)
