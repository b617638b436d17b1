"""The moment a benchmarked process takes its first record: its wall time and its own CPU so far.

The peers benchmark (bench/peers.py) times a run from the start of consumption, but
start-up (imports, group join) differs widely between implementations and Quix writes
rows only at checkpoints, so neither the process start nor the first row marks it.
Each implementation calls `mark_first()` when it has its first record in hand; the
file named by BENCH_FIRST_MARKER then holds `wall cpu` (time.time(), and this
process's user + system seconds, every thread). No dependencies: both venvs import it.
"""

from __future__ import annotations

import os
import time

ENV = "BENCH_FIRST_MARKER"
_done = False


def mark_first() -> None:
    """Record the first call (later calls are free); nothing without BENCH_FIRST_MARKER."""
    global _done
    if _done:
        return
    _done = True
    path = os.environ.get(ENV)
    if not path:
        return
    times = os.times()
    tmp = f"{path}.tmp"
    with open(tmp, "w") as out:
        out.write(f"{time.time()!r} {times.user + times.system!r}\n")
    os.replace(tmp, path)  # the reader never sees half a line


def read_marker(path: str) -> tuple[float, float] | None:
    """(wall time, process CPU seconds) at the first record, or None if not there yet."""
    try:
        with open(path) as marker:
            wall, cpu = marker.read().split()
    except (OSError, ValueError):
        return None
    return float(wall), float(cpu)
