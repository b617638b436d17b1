"""Consumer lag arithmetic: per partition, the events between the committed offset and the end."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def partition_lags(
    assigned: Iterable[Any], committed: Mapping[Any, int | None], ends: Mapping[Any, int]
) -> list[dict[str, Any]]:
    """Per partition: the end offset, the committed offset and the events between them.

    The committed offset is where a restart resumes, so the lag is also what a
    crash would replay. Never committed: everything up to the end counts.
    """
    rows = []
    for tp in sorted(assigned, key=lambda tp: (tp.topic, tp.partition)):
        end = ends.get(tp)
        done = committed.get(tp)
        lag = None if end is None else max(0, end - (done or 0))
        rows.append({"topic": tp.topic, "partition": tp.partition, "committed": done, "end": end, "lag": lag})
    return rows
