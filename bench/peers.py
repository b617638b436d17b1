"""Licenses pipeline, topic -> PostgreSQL: the streamapp worker beside Quix Streams and a bare loop.

    python -m bench.peers [--records 50000] [--customers 1000] [--runs 3]
                          [--impls streamapp,quix,loop] [--profile streamapp,quix,loop | --no-profile]

Starts its own embedded broker and PostgreSQL (`streamapp services`), applies the
licenses migrations, pre-loads `--records` envelopes (streamapp.envelope.Envelope
around a Salesforce CustomerRecord payload, keyed by customer id, every record
changes exactly one license) into a 4-partition `licenses.inbound` topic, then
runs each implementation `--runs` times, interleaved (the order rotates each
round), one process each, on the same topic and the same database (the three
tables are truncated before every run; every run has a consumer group and state
of its own, so each one starts from the first offset with empty state):

  streamapp  the real worker (`streamapp worker` via bench/peers_worker.py, only the
             licenses pipeline, STREAMAPP_WORKER_NICE=0 like its peers)
  quix       Quix Streams: stateful `apply` + its own PostgreSQLSink (bench/peers_quix.py,
             run from `.venv-bench`: `make bench-venv`)
  loop       a hand-written aiokafka + asyncpg loop doing the same business work
             (bench/peers_loop.py)

A run is timed from the moment the implementation takes its first record (it
writes its wall time and its own CPU seconds then: bench/marker.py) until
`license_history` and `licenses` hold every expected row (PostgreSQL polled every
50 ms); records/s and CPU per record (its process tree, from /proc) are over that
span, so start-up (imports, group join) counts for nobody, and Quix's rows, written
only at checkpoints, are waited for like everyone's. One more, unmeasured run of each
implementation in `--profile` (default: streamapp, quix) has py-spy attached from its
first record on; its summary, also in µs per record, follows the table.
Prints a markdown table and writes it to bench/results/peers-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.licenses import code_version
from bench.marker import ENV as MARKER_ENV
from bench.marker import read_marker
from bench.procstat import MACHINE, STOLEN, CpuMeter, cpu_seconds, postmaster_pid
from bench.profile import Profiler, Summary, summarise
from bench.stack import RESULTS, Children, drive, free_port, python, start_services
from simulator.records import Population
from streamapp.envelope import Envelope
from streamapp.models.licenses import parse_simulator_record

ROOT = Path(__file__).resolve().parent.parent
INBOUND = "licenses.inbound"
PARTITIONS = 4
IMPLEMENTATIONS = ("streamapp", "quix", "loop")
LABELS = {
    "streamapp": "streamapp worker (licenses.records)",
    "quix": "Quix Streams (stateful apply + PostgreSQLSink)",
    "loop": "hand-written aiokafka + asyncpg loop",
}
# The records' own times: fixed, so every run (and every implementation) sees the same input.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
POLL = 0.05


# --- the workload (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """The pre-loaded messages and what PostgreSQL must hold once all are processed."""

    messages: list[tuple[bytes, bytes]]
    history_rows: int
    license_rows: int
    active_licenses: int
    customers: int


def generate(records: int, customers: int, seed: int) -> Workload:
    """`records` license-changing envelopes over `customers` customers, the same for a seed.

    Event ids and times are derived from the seed (not uuid4 / now), so two calls
    give the same bytes. The expected rows follow from the population's own
    transitions: one history row per SKU whose licensed state flips.
    """
    population = Population(customers, seed)
    ids = random.Random(seed + 1)
    licensed = {c.id: c.licensed() for c in population.customers}
    touched: set[tuple[str, str]] = set()
    messages: list[tuple[bytes, bytes]] = []
    history = 0
    for i in range(records):
        customer = population.license_changing()
        after = customer.licensed()
        changed = after ^ licensed[customer.id]
        history += len(changed)
        touched.update((customer.id, sku) for sku in changed)
        licensed[customer.id] = after
        envelope = Envelope(
            event_id=uuid.UUID(int=ids.getrandbits(128), version=4),
            source="salesforce.json",
            key=customer.id,
            received_at=EPOCH + timedelta(milliseconds=i),
            # What the webhook view publishes: the validated CustomerRecord, dumped.
            payload=parse_simulator_record(json.dumps(customer.record()).encode()).model_dump(mode="json"),
        )
        messages.append((customer.id.encode(), envelope.encode()))
    active = sum(len(skus) for skus in licensed.values())
    return Workload(messages, history, len(touched), active, len({k for k, _ in messages}))


# --- one run ------------------------------------------------------------------------


@dataclass
class Measurement:
    impl: str
    round: int
    records: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    ok: bool = False
    note: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def us_per_record(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / max(1, self.records) * 1e6

    def share(self, name: str) -> float:
        """`name`'s CPU over the window as a share of one core."""
        return self.cpu.get(name, 0.0) / self.seconds if self.seconds > 0 else 0.0

    @property
    def not_ours(self) -> float:
        ours = sum(v for k, v in self.cpu.items() if k not in (MACHINE, STOLEN, "bench"))
        return max(0.0, self.cpu.get(MACHINE, 0.0) - ours - self.cpu.get("bench", 0.0))


@dataclass
class Profile:
    """One extra, unmeasured run of an implementation with py-spy attached."""

    impl: str
    summary: Summary
    run: Measurement
    rate: int

    def render(self) -> list[str]:
        m, cost = self.run, self.run.us_per_record("impl")
        lines = [
            "",
            f"## {LABELS[self.impl]}: profile (one extra, unmeasured run with py-spy attached)",
            "",
            f"Profiled run: {m.rate:,.0f} records/s, {cost:.0f} µs CPU/record (py-spy's own CPU not "
            f"included), {m.records:,} records in {m.seconds:.1f} s; py-spy attached at the first "
            f"record. At that cost, 1% of the samples is ~{cost / 100:.1f} µs per record.",
            "",
            "```",
            self.summary.render(m.seconds, self.rate),
            "```",
            "",
            "The same samples in µs of CPU per record (share times the run's CPU per record):",
            "",
        ]
        # The stages are the worker's (bench/profile.py); the others' samples are all "other".
        return lines + per_record(self.summary, cost, stages=self.impl == "streamapp")


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str
    tmp: Path
    children: Children
    workload: Workload | None = None
    broker: str = ""  # host:port
    broker_url: str = ""  # kafka://host:port
    dsn: str = ""
    services_pid: int = 0
    measurements: list[Measurement] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    version: str = ""
    quix_version: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path, **extra}
        env.pop("STREAMAPP_DATA_DIR", None)
        return env

    def roots(self, impl_pid: int) -> dict[str, int]:
        roots = {"impl": impl_pid, "broker": self.services_pid}
        pg = postmaster_pid(self.tmp / "data" / "pgdata")
        if pg is not None:
            roots["postgres"] = pg
        return roots


async def prepare(bench: Bench) -> None:
    """Schema (streamapp's migrations), the inbound topic, the pre-loaded records."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streamapp.db.migrate import apply_migrations, load_migrations

    conn = await asyncpg.connect(bench.dsn)
    try:
        migrations = load_migrations("core", "streamapp.db.migrations.core")
        migrations += load_migrations("licenses", "streamapp.stores.licenses.migrations")
        await apply_migrations(conn, migrations)
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.broker)
    await admin.start()
    try:
        # Tansu's DescribeConfigs returns only the configs a topic was created with, and
        # Quix derives its changelog topic from the source's `retention.ms` (KeyError
        # without it): state the broker defaults explicitly.
        configs = {"retention.ms": "-1", "retention.bytes": "-1"}
        await admin.create_topics([NewTopic(INBOUND, PARTITIONS, 1, topic_configs=configs)])
    finally:
        await admin.close()
    assert bench.workload is not None
    producer = AIOKafkaProducer(bootstrap_servers=bench.broker, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(INBOUND, key=k, value=v) for k, v in bench.workload.messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM license_history) AS h, (SELECT count(*) FROM licenses) AS l"
    )
    assert row is not None
    return int(row["h"]), int(row["l"])


def spawn(bench: Bench, impl: str, tag: str) -> subprocess.Popen[str]:
    work = bench.tmp / tag
    work.mkdir()
    group = f"bench-peers-{bench.run_id}-{tag}"
    marker = {MARKER_ENV: str(work / "first-record")}
    if impl == "streamapp":
        env = bench.env(
            STREAMAPP_BROKER_URL=bench.broker_url,
            STREAMAPP_DATABASE_URL=bench.dsn,
            STREAMAPP_WEB_PORT=str(free_port()),
            STREAMAPP_CARTS_GRPC_PORT=str(free_port()),
            STREAMAPP_LOG_LEVEL="WARNING",
            STREAMAPP_APP_ID=group,
            STREAMAPP_DATA_DIR=str(work),
            # Its peers run at normal priority; the default (10) is for sharing with ingest.
            STREAMAPP_WORKER_NICE="0",
            **marker,
        )
        argv = python("-m", "bench.peers_worker", "licenses")
    elif impl == "quix":
        env = bench.env(**marker)
        argv = [
            bench.args.quix_python,
            "-m",
            "bench.peers_quix",
            "--broker",
            bench.broker,
            "--dsn",
            bench.dsn,
            "--group",
            group,
            "--state-dir",
            str(work / "state"),
            "--commit-interval",
            str(bench.args.quix_commit_interval),
        ]
    else:
        env = bench.env(**marker)
        argv = python(
            "-m", "bench.peers_loop", "--broker", bench.broker, "--dsn", bench.dsn, "--group", group
        )
    return bench.children.spawn(tag, argv, env=env, cwd=work)


async def measure(bench: Bench, impl: str, round_: int, *, profile: bool = False) -> Measurement:
    """One run of `impl` over the pre-loaded topic, into empty tables."""
    workload = bench.workload
    assert workload is not None
    tag = f"{impl}-{round_}" + ("-profiled" if profile else "")
    result = Measurement(impl, round_)
    conn = await asyncpg.connect(bench.dsn)
    profiler: Profiler | None = None
    try:
        await conn.execute("TRUNCATE licenses, license_history, customers")
        proc = spawn(bench, impl, tag)
        deadline = time.monotonic() + bench.args.start_timeout
        marker = str(bench.tmp / tag / "first-record")
        first: tuple[float, float] | None = None
        while first is None:
            if proc.poll() is not None:
                raise RuntimeError(f"{tag} exited with {proc.returncode} before its first record")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tag}: no record taken after {bench.args.start_timeout:.0f} s")
            await asyncio.sleep(0.01)
            first = read_marker(marker)
        if profile:
            # From the first record on: start-up (imports, Faust's boot) is not the question.
            profiler = Profiler.attach(
                bench.children, proc.pid, bench.tmp / f"profile-{impl}.raw", bench.args.profile_rate
            )
        # The others' CPU from now; the implementation's from its own first record.
        meter = CpuMeter(bench.roots(proc.pid))
        meter.start()
        first_wall, first_cpu = first
        history, licenses = 0, 0
        changed_at = time.monotonic()
        while history < workload.history_rows or licenses < workload.license_rows:
            await asyncio.sleep(POLL)
            now = time.monotonic()
            new = await counts(conn)
            if new != (history, licenses):
                history, licenses = new
                changed_at = now
            if proc.poll() is not None:
                raise RuntimeError(f"{tag} exited with {proc.returncode}")
            if now - changed_at > bench.args.stall_timeout:
                result.note = f"STALLED at {history:,}/{workload.history_rows:,} history rows"
                break
        result.seconds = time.time() - first_wall
        result.cpu = meter.stop()
        # The implementation's CPU since its first record: its tree now, less what the
        # process had used by then (none of them has children at that point).
        result.cpu["impl"] = cpu_seconds({"impl": proc.pid})["impl"] - first_cpu
        result.records = len(workload.messages) * history // max(1, workload.history_rows)
        active = await conn.fetchval("SELECT count(*) FROM licenses WHERE active")
        result.ok = not result.note and active == workload.active_licenses
        if not result.ok and not result.note:
            result.note = f"{active:,} active licenses, expected {workload.active_licenses:,}"
        if profiler is not None:
            raw = await asyncio.to_thread(profiler.stop)
            profiler = None
            if raw is not None:
                bench.profiles.append(Profile(impl, summarise(raw), result, bench.args.profile_rate))
        bench.children.stop(proc)
    finally:
        if profiler is not None:
            profiler.stop()
        await conn.close()
    return result


# --- report -------------------------------------------------------------------------


def spread(values: Sequence[float], fmt: str) -> str:
    if not values:
        return "-"
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def render(bench: Bench) -> str:
    args = bench.args
    workload = bench.workload
    lines = [
        f"# streamapp licenses beside its peers {bench.run_id}",
        "",
        f"`python -m bench.peers --records {args.records} --customers {args.customers} --runs {args.runs} "
        f"--quix-commit-interval {args.quix_commit_interval:g}` at {bench.version}, on {os.cpu_count()} "
        f"cores, Python {sys.version.split()[0]}, {bench.quix_version}, load average before start "
        f"{args.loadavg}",
        "",
    ]
    if workload is not None:
        lines += [
            f"{len(workload.messages):,} records pre-loaded in `{INBOUND}` ({PARTITIONS} partitions), "
            f"{workload.customers:,} customers; each run ends with {workload.history_rows:,} "
            f"`license_history` rows, {workload.license_rows:,} `licenses` rows "
            f"({workload.active_licenses:,} active). Timed from the moment the implementation took "
            "its first record (bench/marker.py) until PostgreSQL held every row (polled every 50 ms); "
            "CPU per record is the implementation's process CPU over the same span (broker and "
            "PostgreSQL: their whole process trees); min / median / max of the runs.",
            "",
        ]
    lines += [
        "| implementation | runs | records/s | CPU µs/record | x Quix records/s | x Quix CPU/record "
        "| broker µs/rec | postgres µs/rec | stolen (of one core) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[str, tuple[float, float]] = {}
    for impl in args.impls:
        ok = [m for m in bench.measurements if m.impl == impl and m.ok]
        if ok:
            medians[impl] = (
                statistics.median(m.rate for m in ok),
                statistics.median(m.us_per_record("impl") for m in ok),
            )
    quix = medians.get("quix")
    for impl in args.impls:
        runs = [m for m in bench.measurements if m.impl == impl]
        ok = [m for m in runs if m.ok]
        if impl in medians and quix is not None:
            ratio_rate = f"{medians[impl][0] / quix[0]:.2f}x"
            ratio_cpu = f"{medians[impl][1] / quix[1]:.2f}x"
        else:
            ratio_rate = ratio_cpu = "-"
        lines.append(
            f"| {LABELS[impl]} | {len(ok)}/{len(runs)} | {spread([m.rate for m in ok], ',.0f')} "
            f"| {spread([m.us_per_record('impl') for m in ok], ',.0f')} | {ratio_rate} | {ratio_cpu} "
            f"| {spread([m.us_per_record('broker') for m in ok], ',.0f')} "
            f"| {spread([m.us_per_record('postgres') for m in ok], ',.0f')} "
            f"| {spread([100 * m.share(STOLEN) for m in ok], '.0f')} % |"
        )
    lines += ["", "Runs in the order they ran:", ""]
    for m in bench.measurements:
        lines.append(
            f"- round {m.round} {m.impl}: {m.rate:,.0f} records/s, {m.records:,} records in "
            f"{m.seconds:.2f} s; CPU µs/record {m.us_per_record('impl'):.0f} (process tree), "
            f"broker {m.us_per_record('broker'):.0f}, postgres {m.us_per_record('postgres'):.0f}; "
            f"of one core: impl {m.share('impl'):.0%}, not ours {m.not_ours / max(m.seconds, 1e-9):.0%}, "
            f"stolen by the hypervisor {m.share(STOLEN):.0%}" + ("" if m.ok else f"; NOT OK: {m.note}")
        )
    lines += [
        "",
        "Notes: the streamapp worker does more per record than its peers: it also publishes "
        "every license update and customer snapshot to the domain topics and keeps its state "
        "in a changelogged Faust table; Quix keeps its state in RocksDB + a changelog topic "
        "(producer idempotence off: Tansu 0.6 has none), checkpoints every "
        f"{args.quix_commit_interval:g} s (its default is 5 s), and its generic upsert has no "
        "'only if newer' guard; the loop keeps its state in a dict (nothing durable but offsets "
        "and rows). Rows land in PostgreSQL per batch (streamapp, loop) or per checkpoint (Quix).",
    ]
    for profile in bench.profiles:
        lines += profile.render()
    return "\n".join(lines) + "\n"


def per_record(summary: Summary, cost: float, *, stages: bool = True) -> list[str]:
    """Stages and the top inclusive functions as µs per record, for comparing with the peers."""
    total = max(1, summary.samples)
    lines = ["| where (py-spy stage or function, inclusive) | share | µs/record |", "|---|---|---|"]
    for name, n in summary.stages if stages else []:
        lines.append(f"| stage: {name} | {n / total:.0%} | {cost * n / total:.0f} |")
    for name, n in summary.top_inclusive:
        lines.append(f"| `{name}` | {n / total:.0%} | {cost * n / total:.0f} |")
    return lines


# --- driver -------------------------------------------------------------------------


def quix_version(python_path: str) -> str:
    try:
        out = subprocess.run(
            [
                python_path,
                "-c",
                "import quixstreams, confluent_kafka; "
                "print(quixstreams.__version__, confluent_kafka.libversion()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "quixstreams unknown"
    return f"quixstreams {out[0]} (librdkafka {out[1]})"


def run_all(bench: Bench) -> None:
    args = bench.args
    step = Step()
    step(f"generating {args.records:,} records over {args.customers:,} customers")
    bench.workload = generate(args.records, args.customers, args.seed)
    step("starting streamapp services (broker + PostgreSQL)")
    services = start_services(bench.children, bench.tmp / "data")
    bench.broker_url = services["STREAMAPP_BROKER_URL"]
    bench.broker = bench.broker_url.removeprefix("kafka://")
    bench.dsn = services["STREAMAPP_DATABASE_URL"]
    bench.services_pid = bench.children.children[0].proc.pid
    step(f"schema, topic {INBOUND} ({PARTITIONS} partitions), pre-loading the records")
    asyncio.run(prepare(bench))
    for round_ in range(1, args.runs + 1):
        shift = (round_ - 1) % len(args.impls)
        for impl in [*args.impls[shift:], *args.impls[:shift]]:
            step(f"round {round_}/{args.runs}: {impl}")
            m = asyncio.run(measure(bench, impl, round_))
            bench.measurements.append(m)
            step(
                f"  {m.rate:,.0f} records/s, {m.us_per_record('impl'):.0f} us CPU/record"
                + ("" if m.ok else f" NOT OK: {m.note}")
            )
    for impl in args.profile if args.profile_enabled else []:
        if impl in args.impls:
            step(f"one more {impl} run with py-spy attached (not in the table)")
            asyncio.run(measure(bench, impl, 0, profile=True))
    step("stopping")


class Step:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {what}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.peers", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each implementation")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--impls",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(IMPLEMENTATIONS),
        help="comma-separated, of " + ", ".join(IMPLEMENTATIONS),
    )
    parser.add_argument(
        "--quix-python",
        default=str(ROOT / ".venv-bench" / "bin" / "python"),
        help="a Python with quixstreams (make bench-venv)",
    )
    parser.add_argument("--quix-commit-interval", type=float, default=1.0, help="Quix checkpoint, s")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="s until the first row")
    parser.add_argument("--stall-timeout", type=float, default=30.0)
    parser.add_argument(
        "--profile",
        type=lambda s: [x for x in s.split(",") if x],
        default=["streamapp", "quix"],
        help="implementations to profile in one extra run each (default: streamapp,quix)",
    )
    parser.add_argument("--no-profile", dest="profile_enabled", action="store_false")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, profile)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = set(args.impls) - set(IMPLEMENTATIONS)
    if unknown:
        raise SystemExit(f"unknown implementations: {', '.join(sorted(unknown))}")
    # Absolute (the children run elsewhere), but not resolved: a venv's python is a symlink.
    args.quix_python = os.path.abspath(args.quix_python)
    if "quix" in args.impls and not Path(args.quix_python).exists():
        raise SystemExit(f"{args.quix_python} not found: `make bench-venv` installs Quix Streams there")
    args.loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix="streamapp-bench-peers-"))
    bench = Bench(args, f"{stamp}-{os.getpid()}", tmp, Children(log_dir=tmp), version=code_version())
    if "quix" in args.impls:
        bench.quix_version = quix_version(args.quix_python)
    signal.signal(signal.SIGTERM, _interrupt)

    def stop() -> None:
        bench.children.stop_all()
        for raw in bench.tmp.glob("profile-*.raw"):
            RESULTS.mkdir(exist_ok=True)
            impl = raw.stem.removeprefix("profile-")
            shutil.copy(raw, RESULTS / f"peers-{stamp}-{impl}.pyspy.txt")

    return drive(
        "peers",
        stamp,
        tmp,
        keep=args.keep,
        body=lambda: run_all(bench),
        stop=stop,
        report=lambda: render(bench) if bench.measurements else None,
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
