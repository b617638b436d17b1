"""`streamapp dev`'s conveniences: dev credentials, the start-up banner, waiting for readiness."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from streamapp.pipeline import DevOffer, Pipeline
from streamapp.settings import Settings


@dataclass(frozen=True)
class DevCredentials:
    """The admin token (when there is one) and the pipelines' dev secrets, kept across restarts."""

    admin_token: str | None
    kept: dict[str, str]


def _stored(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def prepare_credentials(data_dir: Path, pipelines: Sequence[Pipeline], *, mint_admin: bool) -> DevCredentials:
    """Set the dev secrets in our environment (children inherit them): the admin token, the pipelines'.

    Secrets the user set win. Minted ones are kept in `<data dir>/dev-secrets.json`
    (mode 0600), so a token printed by one run still works after a restart.
    """
    path = data_dir / "dev-secrets.json"
    stored = _stored(path)
    for pipeline in pipelines:
        if pipeline.dev is not None:
            pipeline.dev.keep(stored)
    if mint_admin:
        stored.setdefault("admin_token", "dev_" + secrets.token_urlsafe(24))
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(stored, out)
    admin = None
    if mint_admin:
        os.environ.setdefault("STREAMAPP_ADMIN_TOKEN", stored["admin_token"])
    if os.environ.get("STREAMAPP_ADMIN_TOKEN"):
        admin = os.environ["STREAMAPP_ADMIN_TOKEN"]
    return DevCredentials(admin, stored)


def offers(settings: Settings, credentials: DevCredentials, pipelines: Sequence[Pipeline]) -> list[DevOffer]:
    """What each pipeline shows and hands on, from the settings reloaded with its dev secrets."""
    return [p.dev.offer(settings, credentials.kept) for p in pipelines if p.dev is not None]


def simulator_options(args: argparse.Namespace) -> list[str]:
    """The simulator options `streamapp dev` takes itself (so `make run ARGS=...` can pass them)."""
    argv: list[str] = []
    if args.rate is not None:
        argv += ["--rate", f"{args.rate:g}"]
    if args.calm:
        argv.append("--calm")
    if args.systems is not None:
        argv += ["--systems", ",".join(args.systems)]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    return argv


def wait_ready(urls: list[str], cancelled: threading.Event, timeout: float = 600.0) -> bool:
    """Poll each `<url>/ready` until all answer 200; False when cancelled or after `timeout`."""
    pending = list(urls)
    stop = time.monotonic() + timeout
    while pending and time.monotonic() < stop and not cancelled.is_set():
        url = pending[0]
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    pending.pop(0)
                    continue
        except (urllib.error.URLError, OSError):
            pass
        cancelled.wait(0.3)
    return not pending


class Launcher:
    """Waits (in a thread) until worker and ingest answer; then prints the banner and starts the simulator.

    The simulator starts only after the banner, so its progress line never
    interleaves with it; `stop()` (on Ctrl-C) keeps it from starting at all.
    """

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lock = threading.Lock()
        self.simulator: subprocess.Popen[str] | None = None
        # The drain's list of processes to stop first, once the worker has one.
        self.drain_senders: list[subprocess.Popen[str]] | None = None
        self._thread: threading.Thread | None = None

    def start(self, ready_urls: list[str], text: str, simulator_argv: list[str] | None) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(ready_urls, text, simulator_argv), name="dev-banner", daemon=True
        )
        self._thread.start()

    def _run(self, ready_urls: list[str], text: str, simulator_argv: list[str] | None) -> None:
        from streamapp.console import say
        from streamapp.embedded import die_with_parent

        if not wait_ready(ready_urls, self.cancelled):
            return
        with self.lock:
            if self.cancelled.is_set():
                return
            say(text)
            if simulator_argv is None:
                return
            from streamapp.console import terminal

            # A process group of its own (Ctrl-C reaches only `dev`, which stops it first);
            # its progress goes to the terminal, not to the log file.
            self.simulator = subprocess.Popen(
                simulator_argv, preexec_fn=die_with_parent, process_group=0, text=True, stderr=terminal()
            )
            if self.drain_senders is not None:
                self.drain_senders.append(self.simulator)
        # The kernel's parent-death signal follows the thread that forked the child, not
        # the process: this thread stays until `stop()`, or the simulator would get SIGTERM now.
        self.cancelled.wait()

    def stop(self) -> None:
        """No banner and no simulator from now on (the one already started is the caller's to stop)."""
        self.cancelled.set()
        with self.lock:
            pass


def banner(
    settings: Settings,
    credentials: DevCredentials,
    offered: Sequence[DevOffer],
    *,
    ingest: bool,
    standins: str | None,
    log_file: Path | None,
    simulate: bool,
) -> str:
    """The block `streamapp dev` prints once everything answers: where to look and how to stop."""
    worker = f"http://{settings.web_host}:{settings.web_port}"
    hooks = f"http://{settings.web_host}:{settings.ingest_port if ingest else settings.web_port}"
    admin = (
        credentials.admin_token
        if credentials.admin_token
        else "none needed: admin routes are open in dev (`streamapp dev --admin-token` mints one)"
    )
    rows = [
        ("dashboard", f"{worker}/"),
        ("API docs", f"{worker}/docs"),
        ("webhooks", f"{hooks}/salesforce/webhook  /tasks/webhook  /normalize_merchant  /assistance"),
        ("reads", f"{worker}/licenses/<customer>  /reports/<user>  /assistance/<id>  (and /create_webhook)"),
        *(row for offer in offered for row in offer.rows),
        ("admin token", admin),
    ]
    if standins:
        rows.append(("stand-ins", f"{standins}/  (Slack + mail catcher: where assistance messages go)"))
    rows.append(("data dir", str(settings.data_dir.resolve())))
    rows.append(("logs", f"{log_file}  (--verbose: here)" if log_file else "here (--verbose)"))
    if simulate:
        rows.append(("simulator", "all five systems; its progress is the line below"))
    rows.append(("stop", "Ctrl-C (works off what the topics hold, then stops the broker and PostgreSQL)"))
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"streamapp {version('streamapp')} dev is ready"]
    lines += [f"  {name:<{width}}{value}" for name, value in rows]
    return "\n".join(lines)


def write_dev_env(
    settings: Settings, credentials: DevCredentials, offered: Sequence[DevOffer], standins: str | None
) -> Path:
    """`<data dir>/dev.env`: what the README's commands read (`. .streamapp/dev.env`)."""
    values = {
        "STREAMAPP_DEV_WORKER_URL": f"http://{settings.web_host}:{settings.web_port}",
        "STREAMAPP_DEV_INGEST_URL": f"http://{settings.web_host}:{settings.ingest_port}"
        if settings.ingest_processes
        else f"http://{settings.web_host}:{settings.web_port}",
        "STREAMAPP_DEV_STANDINS_URL": standins or "",
        "STREAMAPP_DEV_ADMIN_TOKEN": credentials.admin_token or "",
    }
    for offer in offered:
        values.update(offer.env)
    path = settings.data_dir / "dev.env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"export {key}={value}\n" for key, value in values.items()))
    return path
