"""`streamapp dev`: every part on one machine, a banner when it answers, logs in a file, an ordered stop."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamapp import console
from streamapp.dev import Launcher
from streamapp.errors import CannotStart
from streamapp.pipeline import Pipeline, discover_pipelines
from streamapp.processes import READY_LINE, run_worker, setup_logging, spawn, stop
from streamapp.settings import Settings, load_settings


def _read_ready(proc: subprocess.Popen[str], what: str, timeout: float = 120.0) -> dict[str, str]:
    """The `STREAMAPP_*=value` lines a child prints before READY_LINE (`services`, `standins`)."""
    assert proc.stdout is not None
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        line = line.strip()
        print(line, flush=True)
        if line == READY_LINE:
            return found
        key, sep, value = line.partition("=")
        if sep and key.startswith("STREAMAPP_"):
            found[key] = value
        if time.monotonic() > deadline:
            break
    raise CannotStart(f"the {what} did not start (exit code {proc.poll()}); {_see_log()}")


_log_file: Path | None = None


def _see_log() -> str:
    return f"see {_log_file}" if _log_file is not None else "see the lines above"


def _dev_preflight(settings: Settings, pipelines: Sequence[Pipeline]) -> None:
    from streamapp.preflight import check_broker, check_ports, server_ports

    ports = server_ports(settings, ingest=settings.ingest_processes > 0, worker=True, pipelines=pipelines)
    if settings.broker_url is None:
        host, port = settings.embedded_broker_host, settings.embedded_broker_port
        ports.append(("STREAMAPP_EMBEDDED_BROKER_PORT", host, port))
    else:
        check_broker(settings)
    check_ports(ports)


def run_dev(args: argparse.Namespace) -> int:
    """Services, stand-ins, worker, ingest processes and (with --simulate) the simulator in one tree."""
    global _log_file
    from streamapp import dev

    settings = load_settings()
    if not args.verbose:
        _log_file = settings.data_dir.resolve() / "streamapp.log"
        console.send_logs_to(_log_file)
        print(f"--- streamapp dev starting at {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    setup_logging(settings)
    pipelines = discover_pipelines()
    _dev_preflight(settings, pipelines)
    services: subprocess.Popen[str] | None = None
    standins: subprocess.Popen[str] | None = None
    ingest: list[subprocess.Popen[str]] = []
    launcher = dev.Launcher()
    # SIGTERM to us ends the worker (Faust handles it); make sure the children go too.
    try:
        if settings.broker_url is None or settings.database_url is None:
            services = spawn([sys.executable, "-m", "streamapp", "services"], stdout=subprocess.PIPE)
            os.environ.update(_read_ready(services, "embedded broker and PostgreSQL"))
        standins_url = None
        if args.standins:
            standins = spawn([sys.executable, "-m", "streamapp", "standins"], stdout=subprocess.PIPE)
            channels = _read_ready(standins, "dev stand-ins")
            standins_url = channels.pop("STREAMAPP_DEV_STANDINS_URL")
            # Only what the user has not configured: a real Slack URL or relay wins.
            for key, value in channels.items():
                os.environ.setdefault(key, value)
        credentials = dev.prepare_credentials(settings.data_dir, pipelines, mint_admin=args.admin_token)
        settings = load_settings()
        offered = dev.offers(settings, credentials, pipelines)
        for offer in offered:
            os.environ.update(offer.environment)
        dev.write_dev_env(settings, credentials, offered, standins_url)
        ingest = [
            spawn([sys.executable, "-m", "streamapp", "ingest"]) for _ in range(settings.ingest_processes)
        ]
        text = dev.banner(
            settings,
            credentials,
            offered,
            ingest=bool(ingest),
            standins=standins_url,
            log_file=_log_file,
            simulate=args.simulate,
        )
        simulator_argv = None
        if args.simulate:
            # Webhooks go where production sends them: to the ingest tier, if there is one.
            hooks = settings.ingest_port if ingest else settings.web_port
            simulator_argv = [
                sys.executable,
                "-m",
                "simulator",
                "--base",
                f"http://{settings.web_host}:{settings.web_port}",
                "--ingest",
                f"http://{settings.web_host}:{hooks}",
                *(option for offer in offered for option in offer.simulator),
                *dev.simulator_options(args),
                *args.simulator_args,
            ]
            if args.verbose:
                # Log lines share the terminal: whole progress lines, never one rewritten in place.
                simulator_argv += ["--progress", "lines"]
        ready = [f"http://{settings.web_host}:{settings.web_port}"]
        if ingest:
            ready.append(f"http://{settings.web_host}:{settings.ingest_port}")
        launcher.start(ready, text, simulator_argv)
        code = run_worker(settings, on_signals=_drain_on_signals(ingest, launcher))
        if code and _log_file is not None:
            console.say(f"streamapp dev: the worker stopped with exit code {code}; {_see_log()}")
        return code
    finally:
        launcher.stop()
        stop(launcher.simulator)
        for proc in ingest:
            stop(proc)
        stop(standins)
        if services is not None and services.poll() is None:
            from streamapp.drain import say

            say("worker stopped; stopping the broker, then PostgreSQL")
            stop(services)
            say("stopped")
        stop(services)


def _drain_on_signals(ingest: Sequence[subprocess.Popen[str]], launcher: Launcher) -> Callable[[Any], None]:
    """SIGINT/SIGTERM stop `dev` in order (streamapp/drain.py) instead of at once."""

    def install(worker: Any) -> None:
        from streamapp.compat import stop_worker_as_on_signal
        from streamapp.drain import Drain

        app = worker.app
        drain = Drain(
            app,
            ingest,
            app.settings.drain_timeout,
            stop_worker=lambda: stop_worker_as_on_signal(worker, signal.SIGTERM),
            record_positions=True,
        )
        # The simulator starts after the banner, so it is added when it starts; a
        # signal first stops the launcher, so none starts after the drain began.
        launcher.drain_senders = drain.senders

        def on_signal() -> None:
            launcher.stop()
            terminal = console.terminal()
            if launcher.simulator is not None and terminal.isatty() and drain.task is None:
                # The simulator's progress line is unfinished: the stop's lines start below it.
                terminal.write("\n")
            drain.on_signal()

        for sig in (signal.SIGINT, signal.SIGTERM):
            worker.loop.add_signal_handler(sig, on_signal)

    return install


def add_dev(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Callable[..., argparse.ArgumentParser],
    func: Callable[[argparse.Namespace], int],
) -> None:
    dev = command(
        sub,
        "dev",
        "services + stand-ins + worker + ingest processes (+ simulator) in one process tree",
        None,
        "Everything on one machine: the embedded broker and PostgreSQL, stand-ins for Slack and "
        "e-mail, the worker, STREAMAPP_INGEST_PROCESSES ingest processes and, with --simulate, "
        "the simulator. Prints a banner with every address once all of it answers; logs go to "
        "<data dir>/streamapp.log. Ctrl-C stops it in order.",
    )
    dev.add_argument("--simulate", action="store_true", help="also run the simulator (all five systems)")
    dev.add_argument("--verbose", action="store_true", help="logs on the terminal instead of the log file")
    dev.add_argument(
        "--admin-token",
        action="store_true",
        help="mint a dev admin token and require it, as production does (default: admin routes open)",
    )
    dev.add_argument(
        "--no-standins",
        dest="standins",
        action="store_false",
        help="no local Slack / mail catcher: assistance uses your STREAMAPP_ASSISTANCE_* settings",
    )
    from simulator.__main__ import add_options

    simulation = dev.add_argument_group("simulator (with --simulate)")
    add_options(simulation)  # type: ignore[arg-type]
    dev.add_argument("simulator_args", nargs="*", help="more simulator arguments (after --)", default=[])
    dev.set_defaults(func=func)
