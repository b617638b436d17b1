"""The process pool CPU-bound work runs in, owned by a service (never the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mode import Service

from streamapp.embedded import die_with_parent
from streamapp.errors import DependencyUnavailable
from streamapp.rules.merchants import identify


def pool_process_setup(owner: int) -> None:
    """Runs in each pool process before any work.

    - exit with the worker (`owner`): a pool process is a child of the
      forkserver, not of the worker, and both it and the forkserver hold the
      forkserver's "alive" pipe, so neither notices a SIGKILLed worker. They
      lived on as orphans (three processes per killed worker) until a watcher
      thread was added here; `die_with_parent` then covers a killed forkserver;
    - a lower CPU priority: heuristics are batch work, and on a machine with as many
      pool processes as cores the worker's event loop (the web view, the agents)
      must still get the CPU first.
    """
    die_with_parent()
    # The pool shares the worker's process group: a terminal's Ctrl-C must not raise
    # KeyboardInterrupt in here; the worker stops the pool when it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=exit_when_gone, args=(owner,), name="owner-watch", daemon=True).start()
    with contextlib.suppress(OSError):
        os.nice(10)


def exit_when_gone(pid: int, poll: float = 1.0) -> None:
    """Block until process `pid` has exited, then end this process at once."""
    try:
        handle = os.pidfd_open(pid)  # Linux 5.3+: readable when the process exits
    except (AttributeError, OSError):
        handle = None
    if handle is not None:
        select.select([handle], [], [])
    else:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass  # exists, owned by someone else (pid reuse): keep waiting
            time.sleep(poll)
    os._exit(0)


class HeuristicPool(Service):
    """`processes` worker processes; `identify()` awaits one merchant lookup."""

    def __init__(self, processes: int, repeat: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.processes = processes
        self.repeat = repeat
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: the worker has threads (Faust's consumer), and forking a
        # threaded process can copy a held lock into the child.
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(
            self.processes, mp_context=context, initializer=pool_process_setup, initargs=(os.getpid(),)
        )

    async def on_start(self) -> None:
        self._pool = self._new_pool()
        # Start the processes now rather than on the first request.
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, identify, "warm-up", 1) for _ in range(self.processes))
        )

    async def on_stop(self) -> None:
        if self._pool is not None:
            # A heuristic can run for many seconds; stopping must not wait for it. Its
            # event is not acknowledged, so the next start runs it again.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def identify(self, description: str) -> str:
        if self._pool is None:
            raise DependencyUnavailable("the heuristic pool is not running")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, identify, description, self.repeat)
        except BrokenProcessPool as exc:
            # A child died (OOM killer, signal): start a new pool; the caller retries.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise DependencyUnavailable("a heuristic process died") from exc
