"""Sampling the worker with py-spy during a phase, and boiling the samples down to a summary."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.stack import Children

# py-spy names files relative to their sys.path entry ("aiokafka/conn.py"), so the
# first path component is the library; a few are merged into the one users know.
ALIASES = {
    "kafka": "aiokafka",
    "pydantic_core": "pydantic",
    "yarl": "aiohttp",
    "multidict": "aiohttp",
    "selectors": "asyncio",
    "<frozen runpy>": "runpy",
}
# Frames of these are on (nearly) every stack; they say nothing in the inclusive list.
FRAMEWORK = frozenset({"asyncio", "runpy"})
LOOP_CALLBACK = "Handle._run (asyncio/events.py"
# Where the loop calls into Python: asyncio's loop in Python, or (uvloop, whose loop
# is C) the frame that started the loop.
LOOP_ENTRIES = (
    LOOP_CALLBACK,
    "BaseEventLoop._run_once (asyncio/base_events.py",
    "Worker.execute_from_commandline (mode/worker.py",
)
# Faust runs the aiokafka consumer in a thread of its own with its own loop.
THREAD_MARKER = "ServiceThread._start_thread (mode/threads.py"
THREAD_STAGE = "consumer thread (aiokafka fetcher + its event loop)"
# Where a sample's CPU went, by the first stage (in this order) any of whose
# markers appears in a frame of the stack.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "HTTP ingest: aiohttp + Faust view + webhook handler",
        ("aiohttp/web_", "faust/web/", "SalesforceWebhook.", "streamapp/web/"),
    ),
    # The runtime applies a batch in a task of its own (streamapp/runtime/batches.py
    # `_handle`), whose stack does not pass through the processor: its frames count
    # here too (the sink agents, also on the runtime, are idle in these benchmarks).
    ("records agent (decide, table, publish)", ("RecordProcessor.", "BatchRuntime.", "streamapp/runtime/")),
    ("Postgres sink agents", ("PostgresSink.",)),
    (
        "Faust consumer/stream machinery (conductor, streams, acks)",
        (
            "faust/transport/consumer.py",
            "faust/transport/conductor.py",
            "faust/streams.py",
            "faust/agents/",
            "faust/tables/",
            "faust/events.py",
        ),
    ),
    (
        "Faust send path (Topic.send, publish, delivery callbacks)",
        ("faust/topics.py", "faust/channels.py", "faust/transport/"),
    ),
    ("aiokafka client (producer, connections, protocol)", ("aiokafka/", "kafka/")),
    ("Faust/mode timers, sensors and services", ("faust/", "mode/")),
    ("asyncpg", ("asyncpg/",)),
)
EVENT_LOOP_STAGE = "event loop only (select, C callbacks, task steps)"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def py_spy_binary() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    """py-spy attached to one pid until `stop()` (SIGINT makes it write its output)."""

    proc: subprocess.Popen[str]
    output: Path
    children: Children

    @classmethod
    def attach(cls, children: Children, pid: int, output: Path, rate: int) -> Profiler | None:
        binary = py_spy_binary()
        if binary is None:
            print("bench: py-spy not found; `pip install py-spy` to profile", file=sys.stderr)
            return None
        argv = [binary, "record", "--pid", str(pid), "--rate", str(rate)]
        argv += ["--format", "raw", "--nonblocking", "--output", str(output)]
        proc = children.spawn("py-spy", argv, stop_signal=signal.SIGINT, grace=30.0)
        return cls(proc, output, children)

    def stop(self) -> Path | None:
        code = self.children.stop(self.proc)
        if not self.output.exists():
            print(f"bench: py-spy wrote nothing (exit {code}); see py-spy.log", file=sys.stderr)
            return None
        return self.output


def package_of(frame: str) -> tuple[str, str]:
    """(function label, package) for a py-spy frame `func (file:line)`."""
    match = FRAME.match(frame)
    if match is None:
        return frame, "other"
    path = match["file"]
    label = f"{match['func']} ({path})"
    top = path.split("/", 1)[0].removesuffix(".py")
    return label, ALIASES.get(top, top)


@dataclass
class Summary:
    samples: int
    by_package: list[tuple[str, int]]
    top_self: list[tuple[str, int]]
    top_inclusive: list[tuple[str, int]]
    package_inclusive: list[tuple[str, int]]
    stages: list[tuple[str, int]]

    def render(self, seconds: float, rate: int) -> str:
        def pct(n: int) -> str:
            return f"{100.0 * n / self.samples:5.1f}%"

        lines = [
            f"py-spy: {self.samples} samples of the worker at {rate} Hz over {seconds:.1f} s "
            f"(~{self.samples / rate / max(seconds, 1e-9):.0%} of one core busy in Python "
            "threads; idle samples excluded)",
            "",
            "By stage (first matching stage on the stack):",
        ]
        lines += [f"  {pct(n)}  {name}" for name, n in self.stages]
        lines += ["", "Self time by package (the leaf frame's library):"]
        lines += [f"  {pct(n)}  {name}" for name, n in self.by_package if n >= self.samples / 200]
        lines += ["", "Inclusive time by package (on the stack of the running task or callback):"]
        lines += [f"  {pct(n)}  {name}" for name, n in self.package_inclusive if n >= self.samples / 200]
        lines += ["", "Top functions by self time:"]
        lines += [f"  {pct(n)}  {name}" for name, n in self.top_self]
        lines += ["", "Top functions by inclusive time:"]
        lines += [f"  {pct(n)}  {name}" for name, n in self.top_inclusive]
        return "\n".join(lines)


def stage_of(stack: str, task_stack: str) -> str:
    """The stage of one sample: the consumer thread by its thread, the rest by its task."""
    if THREAD_MARKER in stack:
        return THREAD_STAGE
    for name, markers in STAGES:
        if any(marker in task_stack for marker in markers):
            return name
    if not task_stack or "asyncio/" in task_stack or "selectors.py" in task_stack:
        return EVENT_LOOP_STAGE
    return "other"


def summarise(raw: Path, top: int = 25) -> Summary:
    """Aggregate py-spy's collapsed stacks (`frame;frame;... count`)."""
    self_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [package_of(f) for f in stack.split(";") if FRAME.match(f)]
        if not frames:
            continue
        total += count
        leaf_label, leaf_pkg = frames[-1]
        self_fn[leaf_label] += count
        self_pkg[leaf_pkg] += count
        # Per library, only the frames of the task or callback the loop is running:
        # the entry point (streamapp.cli, mode.worker) is under every sample.
        runs = [i for i, (label, _) in enumerate(frames) if label.startswith(LOOP_ENTRIES)]
        task_frames = frames[runs[-1] + 1 :] if runs else frames
        for package in {package for _, package in task_frames}:
            incl_pkg[package] += count
        for label in {label for label, package in task_frames if package not in FRAMEWORK}:
            incl_fn[label] += count
        stages[stage_of(stack, ";".join(label for label, _ in task_frames))] += count
    return Summary(
        samples=total,
        by_package=self_pkg.most_common(),
        top_self=self_fn.most_common(top),
        top_inclusive=[(name, n) for name, n in incl_fn.most_common(top * 3) if n < total * 0.999][:top],
        package_inclusive=incl_pkg.most_common(),
        stages=stages.most_common(),
    )
