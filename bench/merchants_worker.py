"""Experiment: `python -m streamapp worker` with the pool fix proposed in the benchmark report.

`python -m bench.merchants --pool-watchdog` runs the worker through this module.
It replaces `streamapp.heuristics.pool_process_setup` (the pool's initializer) by
`watchdog_setup`, which keeps its `nice 10` but, instead of `die_with_parent`,
ends the pool process as soon as the *worker* is gone. The pool processes are
children of the multiprocessing forkserver, not of the worker, and the forkserver
outlives a SIGKILLed worker (every pool process holds its "alive" pipe), so a
PDEATHSIG set in a pool process never fires and the forkserver, the resource
tracker and the pool processes stay behind for good.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time

WATCHDOG_ENV = "BENCH_POOL_WATCHDOG"
# The forkserver, and so every pool process, inherits the worker's environment.
WORKER_PID_ENV = "BENCH_WORKER_PID"


def exit_with(worker: int) -> None:
    """Block until process `worker` exits, then end this process at once."""
    try:
        fd = os.pidfd_open(worker)
    except ProcessLookupError:
        os._exit(1)
    except OSError:  # no pidfd (Linux < 5.3): poll
        while True:
            time.sleep(1.0)
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                os._exit(1)
    select.select([fd], [], [])
    os._exit(1)


def watchdog_setup() -> None:
    """The proposed `pool_process_setup`: lower priority, and never outlive the worker."""
    worker = int(os.environ[WORKER_PID_ENV])
    threading.Thread(target=exit_with, args=(worker,), name="exit-with-worker", daemon=True).start()
    with contextlib.suppress(OSError):
        os.nice(10)


def main() -> int:
    if os.environ.get(WATCHDOG_ENV):
        import streamapp.heuristics

        os.environ[WORKER_PID_ENV] = str(os.getpid())
        streamapp.heuristics.pool_process_setup = watchdog_setup
        print("bench.merchants_worker: pool processes exit with the worker (pidfd)", file=sys.stderr)
    from streamapp.cli import main as streamapp_main

    return streamapp_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
