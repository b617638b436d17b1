"""Child processes for the benchmarks: the embedded services, the worker, servers, load, py-spy.

Every child is registered with a `Children` registry and started in its own
session (a Ctrl-C in the terminal reaches only us; we stop the children in
order) with PDEATHSIG set, so even a SIGKILLed benchmark takes them along.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from streamapp.embedded import die_with_parent

READY_LINE = "STREAMAPP_SERVICES_READY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    stop_signal: int = signal.SIGTERM
    grace: float = 15.0


@dataclass
class Children:
    """Owns every child process; `stop_all` ends them newest first (terminate, then kill)."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)
    pgdata: Path | None = None

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout: int | IO[str] | None = None,
        stop_signal: int = signal.SIGTERM,
        grace: float = 15.0,
    ) -> subprocess.Popen[str]:
        log_file = (self.log_dir / f"{name}.log").open("a")
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log_file,
            stderr=log_file,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log_file.close()
        self.children.append(Child(name, proc, stop_signal, grace))
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> int | None:
        for child in list(self.children):
            if child.proc is proc:
                self.children.remove(child)
                return _stop(child)
        return proc.poll()

    def stop_all(self) -> None:
        while self.children:
            child = self.children.pop()
            with contextlib.suppress(Exception):
                _stop(child)
        if self.pgdata is not None:
            stop_orphan_postgres(self.pgdata)


def _stop(child: Child) -> int | None:
    proc = child.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(child.stop_signal)
        try:
            proc.wait(child.grace)
        except subprocess.TimeoutExpired:
            print(f"bench: {child.name} ignored signal {child.stop_signal}; killing", file=sys.stderr)
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def stop_orphan_postgres(pgdata: Path, timeout: float = 15.0) -> None:
    """pg_ctl daemonises the server: if `streamapp services` died without stopping it, we do."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def start_services(children: Children, data_dir: Path) -> dict[str, str]:
    """Run `streamapp services` on a free broker port; return the env lines it printed."""
    env = {
        **os.environ,
        "STREAMAPP_DATA_DIR": str(data_dir),
        "STREAMAPP_EMBEDDED_BROKER_PORT": str(free_port()),
        "STREAMAPP_LOG_LEVEL": "WARNING",
    }
    env.pop("STREAMAPP_BROKER_URL", None)
    env.pop("STREAMAPP_DATABASE_URL", None)
    children.pgdata = data_dir / "pgdata"
    proc = children.spawn(
        "services",
        python("-m", "streamapp", "services"),
        env=env,
        stdout=subprocess.PIPE,
        grace=30.0,
    )
    assert proc.stdout is not None
    found: dict[str, str] = {}
    # pgserver's initdb takes a few seconds; the broker starts at once.
    for line in proc.stdout:
        line = line.strip()
        if line == READY_LINE:
            return found
        key, sep, value = line.partition("=")
        if sep and key.startswith("STREAMAPP_"):
            found[key] = value
    raise RuntimeError(f"streamapp services exited ({proc.wait()}) before it was ready")


def wait_http(url: str, timeout: float, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll until GET `url` answers 200; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
                last = response.status
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last!r})")


def wait_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == expected:
            return
    raise RuntimeError(f"child exited ({proc.wait()}) before printing {expected!r}")


def read_json_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The last stdout line of a finished load generator, parsed."""
    import json

    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


RESULTS = Path(__file__).resolve().parent / "results"


def drive(
    name: str,
    stamp: str,
    tmp: Path,
    *,
    keep: bool,
    body: Callable[[], None],
    stop: Callable[[], None],
    report: Callable[[], str | None],
) -> int:
    """Run a benchmark's `body`, always `stop` its children, write its report; the exit code.

    Ctrl-C and SIGTERM (see `interrupt_on_sigterm`) stop the children like a
    normal end; a failure keeps `tmp` (logs, data) for a look.
    """
    code = 0
    try:
        body()
    except KeyboardInterrupt:
        print("bench: interrupted; stopping children", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"bench: failed: {exc!r} (logs in {tmp})", file=sys.stderr)
        keep = True
        code = 1
    finally:
        stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"bench: logs and data kept in {tmp}", file=sys.stderr)
    text = report()
    if text:
        print(text)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{name}-{stamp}.md"
        out.write_text(text)
        print(f"written to {out}", file=sys.stderr)
    return code


async def group_lag(broker_url: str, group: str, topic: str) -> int:
    """Events of `topic` the consumer group has not committed yet: how far the workers are behind."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker_url.removeprefix("kafka://"), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # fills the metadata partitions_for_topic reads
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            lag += ends[tp] - (committed or 0)
        return lag
    finally:
        await consumer.stop()


async def wait_drained(broker_url: str, group: str, topic: str, timeout: float) -> tuple[int, float | None]:
    """(the lag now, seconds until the group caught up or None if it did not within `timeout`)."""
    started = time.monotonic()
    first = await group_lag(broker_url, group, topic)
    lag = first
    while lag > 0:
        if time.monotonic() - started > timeout:
            return first, None
        await asyncio.sleep(0.5)
        lag = await group_lag(broker_url, group, topic)
    return first, time.monotonic() - started
