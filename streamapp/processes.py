"""Starting, running and stopping streamapp's processes: a worker or ingest process, and children."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamapp.host import Role
    from streamapp.settings import Settings

# `streamapp services` prints it once the broker and PostgreSQL answer.
READY_LINE = "STREAMAPP_SERVICES_READY"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_further_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Once a process is stopping, a second SIGINT/SIGTERM changes nothing: ignore it.

    Ctrl-C reaches every process of `dev`'s group, and `dev` then sends SIGTERM as it
    stops them, so a second signal often arrives while asyncio.run() closes the loop.
    CPython 3.11's unix loop closes its self-pipe *before* removing its signal handlers,
    and a signal in between prints "Exception ignored when trying to write to the signal
    wakeup fd ... OSError: Bad file descriptor" with a traceback on the terminal. Removing
    the handlers ourselves while the loop is open, then ignoring the signals, closes that
    window (and a late Ctrl-C cannot raise KeyboardInterrupt during shutdown either).
    """
    for sig in STOP_SIGNALS:
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


def setup_logging(settings: Settings) -> None:
    import logging.config

    from streamapp.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))


def yield_cpu(nice: int) -> None:
    """Let the webhooks have the CPU first: a worker works off a backlog, ingest answers people.

    Set before Faust starts its threads and children (the heuristics pool), which
    inherit it; `dev` starts the ingest processes before this, so they do not.
    """
    os.nice(nice)
    if os.getsid(0) == os.getpid():
        # A session of its own (a supervisor, `setsid`, the benchmarks) is also a
        # scheduler autogroup of its own on Linux, and the CPU is shared between
        # autogroups before nice values count: lower the group's priority too.
        # (Not under `dev` from a shell, whose group holds the ingest processes.)
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(f"{nice}\n")
    if hasattr(os, "sched_setscheduler"):  # Linux
        # SCHED_BATCH: the worker's wake-ups do not preempt a running ingest process,
        # which would add a scheduler slice to that request's latency.
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def run_worker(
    settings: Settings, role: Role = "worker", on_signals: Callable[[Any], None] | None = None
) -> int:
    """Run a worker, or (role "ingest") an ingest process: the same app, producer-only.

    `on_signals(worker)` runs once Faust has installed its signal handlers, to replace them.
    """
    import faust

    from streamapp.app import create_app

    app = create_app(settings, role=role)
    # Faust creates `<data dir>/state` at start, but not its parents.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from streamapp.logs import logging_config

    class Worker(faust.Worker):
        def _setup_spinner_handler(self, logger: logging.Logger, level: int) -> None:
            # Faust's terminal spinner sets the root logger to DEBUG (at WARNING and
            # above) so it can spin on every record: every debug line of faust,
            # aiokafka and mode would be built and formatted. We are a service.
            self.spinner = None

        def install_signal_handlers(self) -> None:
            super().install_signal_handlers()
            if on_signals is not None:
                on_signals(self)

    if role == "worker" and settings.worker_nice:
        yield_cpu(settings.worker_nice)
    if role == "worker":
        gc.set_threshold(*settings.worker_gc_thresholds)
    worker = Worker(
        app,
        loglevel=settings.log_level,
        redirect_stdouts=False,
        logging_config=logging_config(settings.log_level, settings.log_format),
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def spawn(argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
    from streamapp.embedded import die_with_parent

    # A process group of its own: a terminal's Ctrl-C (SIGINT to the foreground group)
    # reaches only `dev`, which stops the children in order (streamapp/drain.py).
    proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
        list(argv), preexec_fn=die_with_parent, process_group=0, text=True, **kwargs
    )
    return proc


def stop(proc: subprocess.Popen[str] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
