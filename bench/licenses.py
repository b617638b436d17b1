"""Licenses pipeline benchmark: webhook ingest and end to end, against baselines in the same run.

    python -m bench.licenses [--duration 30] [--concurrency 64] [--records 50000]

Starts its own embedded broker and PostgreSQL (`streamapp services`), its own
workers (`--workers`, one per core) and ingest processes (`--ingest-processes`,
STREAMAPP_INGEST_PROCESSES) on free ports, measures

  (a) ingest: POST /salesforce/webhook from `--concurrency` clients for `--duration` s,
  (b) end to end: `--records` license-changing records, from the first POST until the
      last license_history row is committed,
  (c) baselines: a naive aiohttp + one-INSERT-per-request server under the same load,
      and a bare one-agent Faust pass-through on the same broker,

profiles the first worker with py-spy during (b), reports after each ingest phase
how far the workers fell behind and how long they took to catch up, prints a markdown table and writes it
to bench/results/licenses-<timestamp>.md. Not part of the test suite.

`python -m bench.publish_path` measures the publish path alone; the machine is
usually shared, so compare runs by the "not ours" CPU they report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.procstat import CpuMeter, listens_on, postmaster_pid, shares
from bench.profile import Profiler, summarise
from bench.stack import (
    RESULTS,
    Children,
    drive,
    free_port,
    python,
    read_json_result,
    start_services,
    wait_drained,
    wait_http,
    wait_line,
)
from simulator.records import Population
from streamapp.pipelines.licenses import INBOUND
from streamapp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK = "/salesforce/webhook"

# The floors from the issue.
INGEST_FLOOR_RPS = 3000.0
INGEST_FLOOR_P99_MS = 100.0
E2E_FLOOR_RPS = 1500.0
DRAIN_TIMEOUT = 300.0


@dataclass
class Row:
    scenario: str
    throughput: str
    p50: str = "-"
    p99: str = "-"
    notes: str = ""


@dataclass
class Run:
    """Everything one benchmark run owns and learns."""

    args: argparse.Namespace
    run_id: str
    tmp: Path
    children: Children
    broker_url: str = ""
    database_url: str = ""
    services_pid: int = 0
    rows: list[Row] = field(default_factory=list)
    profile_text: str = ""
    cpu_notes: list[str] = field(default_factory=list)
    version: str = ""
    ingest: list[subprocess.Popen[str]] = field(default_factory=list)
    # Workers after the first (`--workers`); they share the partitions with it.
    more_workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path, **extra}
        env.pop("STREAMAPP_DATA_DIR", None)
        return env

    def cpu_roots(self, **named: int) -> dict[str, int]:
        roots = {"broker": self.services_pid, **named}
        for i, proc in enumerate(self.more_workers, start=2):
            roots[f"worker{i}"] = proc.pid
        for i, proc in enumerate(self.ingest):
            roots[f"ingest{i}"] = proc.pid
        pg = postmaster_pid(self.tmp / "data" / "pgdata")
        if pg is not None:
            roots["postgres"] = pg
        return roots


# --- formatting -------------------------------------------------------------------


def ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else "-"


def rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def cpu_line(phase: str, seconds: float, cpu: dict[str, float], loadgen: float | None) -> str:
    """Each process's share of one core; "not ours" is what other processes on the machine used."""
    named = {**cpu, "loadgen": loadgen} if loadgen is not None else cpu
    return f"{phase} ({seconds:.1f} s): " + ", ".join(shares(named, seconds)) + " of one core"


def code_version() -> str:
    """The commit the worker ran, and whether streamapp/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "streamapp"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {head}" + (" + uncommitted changes in streamapp/" if dirty else "")


def render(run: Run) -> str:
    args = run.args
    lines = [
        f"# streamapp licenses benchmark {run.run_id}",
        "",
        f"`python -m bench.licenses --duration {args.duration:g} --concurrency "
        f"{args.concurrency} --records {args.records} --customers {args.customers} "
        f"--faust-events {args.faust_events} --ingest-processes {args.ingest_processes} "
        f"--workers {args.workers}" + f"` at {run.version}, on {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, load average before start {run.args.loadavg}",
        "",
        "| scenario | throughput | p50 | p99 | notes |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.scenario} | {r.throughput} | {r.p50} | {r.p99} | {r.notes} |" for r in run.rows]
    lines += [
        f"| floor (issue): ingest | >= {INGEST_FLOOR_RPS:,.0f} req/s | - "
        f"| < {INGEST_FLOOR_P99_MS:.0f} ms | |",
        f"| floor (issue): end to end | >= {E2E_FLOOR_RPS:,.0f} records/s | - | - | |",
    ]
    if run.cpu_notes:
        lines += [
            "",
            f"CPU use per phase (share of one core; the machine has {os.cpu_count()}):",
            "",
        ]
        lines += [f"- {note}" for note in run.cpu_notes]
    if run.profile_text:
        lines += ["", "## Worker profile during the end-to-end phase", "", "```"]
        lines += [run.profile_text, "```"]
    return "\n".join(lines) + "\n"


# --- load generator ---------------------------------------------------------------


def spawn_loadgen(run: Run, url: str, *extra: str) -> subprocess.Popen[str]:
    argv = python("-m", "bench.loadgen", "--url", url, "--concurrency", str(run.args.concurrency))
    return run.children.spawn("loadgen", [*argv, *extra], env=run.env(), cwd=ROOT, stdout=subprocess.PIPE)


def finish_loadgen(run: Run, proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        return read_json_result(proc, timeout)
    finally:
        run.children.stop(proc)


def timed_load(run: Run, url: str) -> dict[str, Any]:
    args = run.args
    proc = spawn_loadgen(
        run,
        url,
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--customers",
        str(args.customers),
    )
    return finish_loadgen(run, proc, args.duration + args.warmup + 120)


def status_note(result: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items()))
    return f"{result['requests']:,} requests, {result['errors']} errors ({statuses})"


# --- (c2) bare Faust pass-through ----------------------------------------------------


async def faust_passthrough(run: Run) -> Row:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streamapp.envelope import Envelope

    events = run.args.faust_events
    bootstrap = run.broker_url.removeprefix("kafka://")
    source, sink = f"bench.passthrough.in.{run.run_id}", f"bench.passthrough.out.{run.run_id}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(source, 4, 1), NewTopic(sink, 4, 1)])
    finally:
        await admin.close()

    # Values shaped like the real inbound envelopes, so message sizes match.
    population = Population(run.args.customers, seed=7)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for _ in range(events):
            customer = population.license_changing()
            value = Envelope(
                event_id=uuid.uuid4(),
                source="salesforce.json",
                key=customer.id,
                payload=customer.record(),
            ).encode()
            futures.append(await producer.send(source, key=customer.id.encode(), value=value))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    meter: CpuMeter | None = None
    try:
        consumer.assign([TopicPartition(sink, p) for p in range(4)])
        await consumer.seek_to_beginning()
        proc = run.children.spawn(
            "passthrough",
            python(
                "-m",
                "bench.passthrough",
                "--broker",
                run.broker_url,
                "--app-id",
                f"bench-passthrough-{run.run_id}",
                "--source",
                source,
                "--sink",
                sink,
                "--datadir",
                str(run.tmp / "passthrough-data"),
            ),
            env=run.env(),
            cwd=run.tmp,
        )
        count = 0
        first_at = last_at = 0.0
        first_batch = 0
        deadline = time.monotonic() + 120 + events / 200
        while count < events:
            if proc.poll() is not None:
                raise RuntimeError(f"the pass-through worker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                break
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            got = sum(len(messages) for messages in batches.values())
            if not got:
                continue
            now = time.monotonic()
            if count == 0:
                first_at, first_batch = now, got
                meter = CpuMeter(run.cpu_roots(passthrough=proc.pid))
                meter.start()
            count += got
            last_at = now
        cpu = meter.stop() if meter is not None else {}
        run.children.stop(proc)
    finally:
        await consumer.stop()
    elapsed = last_at - first_at
    throughput = (count - first_batch) / elapsed if elapsed > 0 else 0.0
    if cpu and elapsed > 0:
        run.cpu_notes.append(cpu_line("faust pass-through", elapsed, cpu, None))
    per_event = cpu.get("passthrough", 0.0) / max(1, count - first_batch) * 1e6
    return Row(
        "baseline: bare Faust one-agent pass-through (same broker)",
        rate(throughput, "events/s"),
        notes=f"{count:,}/{events:,} events pre-produced, counted at the output topic; "
        f"pass-through process ~{per_event:.0f} us CPU/event",
    )


# --- (c1) naive aiohttp + INSERT -------------------------------------------------------


def naive_baseline(run: Run) -> Row:
    port = free_port()
    server = run.children.spawn(
        "naive-server",
        python(
            "-m",
            "bench.naive_server",
            "--dsn",
            run.database_url,
            "--port",
            str(port),
            "--pool-size",
            str(run.args.naive_pool_size),
        ),
        env=run.env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    wait_line(server, "READY")
    meter = CpuMeter(run.cpu_roots(server=server.pid))
    meter.start()
    started = time.monotonic()
    result = timed_load(run, f"http://127.0.0.1:{port}{WEBHOOK}")
    seconds = time.monotonic() - started
    run.cpu_notes.append(cpu_line("naive ingest", seconds, meter.stop(), result["cpu_seconds"]))
    run.children.stop(server)
    return Row(
        "baseline: naive aiohttp, 1 INSERT/request",
        rate(result["rps"], "req/s"),
        ms(result["p50_ms"]),
        ms(result["p99_ms"]),
        f"{status_note(result)}; asyncpg pool of {run.args.naive_pool_size}, autocommit",
    )


# --- the worker ------------------------------------------------------------------------


def start_worker(run: Run, index: int = 1) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = run.env(
        STREAMAPP_BROKER_URL=run.broker_url,
        STREAMAPP_DATABASE_URL=run.database_url,
        STREAMAPP_WEB_PORT=str(port),
        # Every listening port on a free one, so runs never clash (the carts gRPC server).
        STREAMAPP_CARTS_GRPC_PORT=str(free_port()),
        STREAMAPP_LOG_LEVEL="WARNING",
        STREAMAPP_APP_ID=f"bench-{run.run_id}",
    )
    # A worker's working directory collects Faust's `<app id>-data`; keep it in our temp dir.
    env["STREAMAPP_DATA_DIR"] = str(run.tmp / f"worker{index}")
    argv = python("-m", "streamapp", "worker")
    cwd = run.tmp / f"worker{index}"
    cwd.mkdir(exist_ok=True)
    worker = run.children.spawn(f"worker{index}", argv, env=env, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/ready", 120.0, worker)
    return worker, base


def start_ingest(run: Run, processes: int) -> tuple[list[subprocess.Popen[str]], str]:
    """`processes` ingest processes (`streamapp ingest`) sharing one port (SO_REUSEPORT)."""
    port = free_port()
    env = run.env(
        STREAMAPP_BROKER_URL=run.broker_url,
        STREAMAPP_DATABASE_URL=run.database_url,
        STREAMAPP_INGEST_PORT=str(port),
        STREAMAPP_LOG_LEVEL="WARNING",
        STREAMAPP_APP_ID=f"bench-{run.run_id}",
    )
    env["STREAMAPP_DATA_DIR"] = str(run.tmp / "ingest")
    procs = [
        run.children.spawn(f"ingest{i}", python("-m", "streamapp", "ingest"), env=env, cwd=run.tmp)
        for i in range(processes)
    ]
    base = f"http://127.0.0.1:{port}"
    for proc in procs:
        wait_http(f"{base}/ready", 120.0, proc)
        # Any of them may have answered: each must hold its own listener before the load.
        deadline = time.monotonic() + 60.0
        while not listens_on(proc.pid, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest process {proc.pid} is not listening on {port}")
            time.sleep(0.2)
    return procs, base


# --- (b) end to end --------------------------------------------------------------------


@dataclass
class Plan:
    path: Path
    records: int
    expected_rows: int
    customer_ids: list[str]


def build_plan(path: Path, records: int, customers: int, clients: int, seed: int) -> Plan:
    """Records per client, every customer on one client so its records stay in order.

    The expected history rows come from the population's own transitions: one row
    per SKU whose licensed state flips (license_changing() flips exactly one).
    """
    population = Population(customers, seed)
    client_of = {c.id: i % clients for i, c in enumerate(population.customers)}
    licensed = {c.id: c.licensed() for c in population.customers}
    plan: list[list[str]] = [[] for _ in range(clients)]
    expected = 0
    for _ in range(records):
        customer = population.license_changing()
        after = customer.licensed()
        expected += len(after ^ licensed[customer.id])
        licensed[customer.id] = after
        plan[client_of[customer.id]].append(json.dumps(customer.record()))
    path.write_text(json.dumps({"clients": plan}))
    return Plan(path, records, expected, [c.id for c in population.customers])


async def history_count(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT count(*) FROM license_history")
    return value


async def end_to_end(
    run: Run,
    worker: subprocess.Popen[str],
    base: str,
    plan: Plan,
    *,
    profile: bool,
    measured: bool = True,
) -> Row:
    """Post the plan and wait until license_history holds every expected row."""
    args = run.args
    conn = await asyncpg.connect(run.database_url)
    profiler: Profiler | None = None
    try:
        before = await history_count(conn)
        target = before + plan.expected_rows
        roots = run.cpu_roots(worker=worker.pid)
        if profile:
            profiler = Profiler.attach(run.children, worker.pid, run.tmp / "profile.raw", args.profile_rate)
            if profiler is not None:
                roots["py-spy"] = profiler.proc.pid
        meter = CpuMeter(roots)
        meter.start()
        meter_started = time.monotonic()
        loadgen = spawn_loadgen(run, base + WEBHOOK, "--plan", str(plan.path))
        count, changed_at, done_at = before, time.monotonic(), None
        samples: list[tuple[float, int]] = []
        while True:
            # Poll slowly while far from the target: count(*) costs the database too.
            near = count >= before + 0.95 * plan.expected_rows
            await asyncio.sleep(0.05 if near else 0.5)
            new = await history_count(conn)
            now = time.monotonic()
            samples.append((now, new))
            if new != count:
                count, changed_at = new, now
            if count >= target:
                done_at = now
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            if loadgen.poll() is not None and now - changed_at > args.stall_timeout:
                print(f"bench: end to end stalled at {count - before} rows", file=sys.stderr)
                break
        cpu = meter.stop()
        cpu_seconds = time.monotonic() - meter_started
        if profiler is not None:
            raw = await asyncio.to_thread(profiler.stop)
            profiler = None
            if raw is not None:
                run.profile_text = summarise(raw).render(cpu_seconds, args.profile_rate)
        result = await asyncio.to_thread(finish_loadgen, run, loadgen, 600.0)
        latency = await conn.fetchrow(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99
            FROM (SELECT extract(epoch FROM recorded_at - effective_at) * 1000 AS lag
                  FROM license_history WHERE customer_id = ANY($1::text[])) AS t
            """,
            plan.customer_ids,
        )
    finally:
        if profiler is not None:
            profiler.stop()
        await conn.close()
    end = done_at if done_at is not None else changed_at
    elapsed = end - (result["first_post"] or meter_started)
    rows_done = count - before
    # Records whose rows landed, per second (all of them unless the run stalled).
    throughput = plan.records * rows_done / plan.expected_rows / elapsed if elapsed > 0 else 0.0
    if measured:
        run.cpu_notes.append(cpu_line("end to end", cpu_seconds, cpu, result["cpu_seconds"]))
        worker_us = sum(v for k, v in cpu.items() if k.startswith("worker")) / plan.records * 1e6
        run.cpu_notes.append(f"end to end: workers ~{worker_us:.0f} us CPU per record")
    lag50 = float(latency["p50"]) if latency["p50"] is not None else None
    lag99 = float(latency["p99"]) if latency["p99"] is not None else None
    return Row(
        "streamapp: end to end, POST -> license_history row",
        rate(throughput, "records/s"),
        ms(lag50),
        ms(lag99),
        f"{plan.records:,} records / {len(plan.customer_ids):,} customers, "
        f"{rows_done:,}/{plan.expected_rows:,} rows in {elapsed:.1f} s"
        f"{'' if done_at is not None else ' (STALLED)'}; p50/p99 = received_at -> sink "
        f"transaction; POST p50 {ms(result['p50_ms'])}, p99 {ms(result['p99_ms'])}, "
        f"{result['errors']} errors; {phases(samples, result)}; floor >= {E2E_FLOOR_RPS:,.0f}/s: "
        f"{verdict(throughput >= E2E_FLOOR_RPS)}",
    )


def phases(samples: Sequence[tuple[float, int]], result: dict[str, Any]) -> str:
    """Rows/s while the POSTs ran and after the last one: is ingest or processing behind?"""
    first, last = result.get("first_post"), result.get("last_done")
    if not samples or first is None or not last:
        return "rows/s by phase unknown"
    during = [(t, n) for t, n in samples if t <= last]
    after = [(t, n) for t, n in samples if t >= last]
    parts = []
    if len(during) >= 2 and during[-1][0] > during[0][0]:
        rows = during[-1][1] - during[0][1]
        parts.append(f"{rows / (during[-1][0] - during[0][0]):,.0f} rows/s while posting")
    if len(after) >= 2 and after[-1][0] > after[0][0]:
        rows = after[-1][1] - after[0][1]
        parts.append(
            f"{rows / (after[-1][0] - after[0][0]):,.0f} rows/s in the {after[-1][0] - last:.0f} s "
            "after the last POST"
        )
    return f"all POSTs answered after {last - first:.1f} s; " + ", ".join(parts)


# --- (a) webhook ingest ----------------------------------------------------------------


def ingest(run: Run, worker: subprocess.Popen[str], base: str, scenario: str) -> Row:
    meter = CpuMeter(run.cpu_roots(worker=worker.pid))
    meter.start()
    started = time.monotonic()
    result = timed_load(run, base + WEBHOOK)
    seconds = time.monotonic() - started
    run.cpu_notes.append(cpu_line(scenario, seconds, meter.stop(), result["cpu_seconds"]))
    # The agents ran all along, but (STREAMAPP_WORKER_NICE) behind the webhooks: how far
    # behind they were when the load stopped, and how long they took to catch up. The
    # next phase starts only after that, so it is not measured against this backlog.
    lag, drained = asyncio.run(wait_drained(run.broker_url, f"bench-{run.run_id}", INBOUND, DRAIN_TIMEOUT))
    worked_off = f"worked off in {drained:.1f} s" if drained is not None else "NOT worked off"
    backlog = f"worker backlog at the end {lag:,} events, {worked_off}"
    ok = (
        result["rps"] >= INGEST_FLOOR_RPS
        and result["p99_ms"] is not None
        and result["p99_ms"] < INGEST_FLOOR_P99_MS
        and result["errors"] == 0
    )
    return Row(
        scenario,
        rate(result["rps"], "req/s"),
        ms(result["p50_ms"]),
        ms(result["p99_ms"]),
        f"{status_note(result)}; 202 after broker ack; {backlog}; floor >= {INGEST_FLOOR_RPS:,.0f} "
        f"req/s, p99 < {INGEST_FLOOR_P99_MS:.0f} ms: {verdict(ok)}",
    )


# --- driver ----------------------------------------------------------------------------


def run_all(run: Run) -> None:
    args = run.args
    step = Step()
    step("starting streamapp services (broker + PostgreSQL)")
    services = start_services(run.children, run.tmp / "data")
    run.broker_url = services["STREAMAPP_BROKER_URL"]
    run.database_url = services["STREAMAPP_DATABASE_URL"]
    run.services_pid = run.children.children[0].proc.pid
    plan = build_plan(run.tmp / "plan.json", args.records, args.customers, args.concurrency, args.seed)
    warm = build_plan(run.tmp / "warm.json", 500, 250, args.concurrency, args.seed + 1)

    if not args.skip_baselines:
        step(f"baseline: bare Faust pass-through, {args.faust_events:,} events")
        run.rows.append(asyncio.run(faust_passthrough(run)))
        step(f"baseline: naive aiohttp + INSERT, {args.concurrency} clients, {args.duration:g} s")
        run.rows.append(naive_baseline(run))

    step(f"starting {args.workers} streamapp worker(s)")
    worker, worker_base = start_worker(run)
    run.more_workers = [start_worker(run, i)[0] for i in range(2, args.workers + 1)]
    base = worker_base
    if args.ingest_processes:
        step(f"starting {args.ingest_processes} ingest process(es)")
        run.ingest, base = start_ingest(run, args.ingest_processes)
    step("warming up the pipeline (500 records until they land in PostgreSQL)")
    asyncio.run(end_to_end(run, worker, base, warm, profile=False, measured=False))
    step("measuring the idle worker for 5 s")
    idle = CpuMeter(run.cpu_roots(worker=worker.pid))
    idle.start()
    time.sleep(5.0)
    run.cpu_notes.append(cpu_line("idle worker, no load", 5.0, idle.stop(), None))
    step(f"end to end: {args.records:,} records" + (" (py-spy attached)" if args.profile else ""))
    e2e_row = asyncio.run(end_to_end(run, worker, base, plan, profile=args.profile))
    step(f"ingest: {args.concurrency} clients, {args.duration:g} s")
    ingest_rows = [ingest(run, worker, base, INGEST_TIER if run.ingest else INGEST_WORKER)]
    if run.ingest:
        step(f"ingest on the worker's own port, for comparison: {args.duration:g} s")
        ingest_rows.append(ingest(run, worker, worker_base, INGEST_WORKER))
    run.rows[:0] = [*ingest_rows, e2e_row]
    # Ingest, then its baseline, then end to end, then the Faust baseline.
    run.rows.sort(key=lambda r: ORDER.index(r.scenario) if r.scenario in ORDER else 99)
    step("stopping")


INGEST_TIER = "streamapp: webhook ingest via the ingest tier (agents running)"
INGEST_WORKER = "streamapp: webhook ingest on the worker's port (agents running)"
ORDER = [
    INGEST_TIER,
    INGEST_WORKER,
    "baseline: naive aiohttp, 1 INSERT/request",
    "streamapp: end to end, POST -> license_history row",
    "baseline: bare Faust one-agent pass-through (same broker)",
]


class Step:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {what}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.licenses", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="ingest seconds (a, c1)")
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=Settings.model_fields["ingest_processes"].default,
        help="`streamapp ingest` processes the POSTs go to (0: the worker's own port); "
        "default STREAMAPP_INGEST_PROCESSES's",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    parser.add_argument("--concurrency", type=int, default=64, help="HTTP clients (and pool)")
    parser.add_argument("--records", type=int, default=50_000, help="end-to-end records (b)")
    parser.add_argument("--customers", type=int, default=5_000, help="population size")
    parser.add_argument("--faust-events", type=int, default=20_000, help="pass-through events")
    parser.add_argument("--naive-pool-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stall-timeout", type=float, default=30.0)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument(
        "--workers",
        type=int,
        # One per core: a worker's agents run on one event loop, so one worker uses
        # one core however large the backlog (capped by the 4 default partitions).
        default=max(1, min(os.cpu_count() or 1, Settings.model_fields["topic_partitions"].default)),
        help="streamapp worker processes, sharing the topics' partitions (default: one per core)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, profile)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="streamapp-bench-licenses-"))
    run = Run(args, run_id, tmp, Children(log_dir=tmp), version=code_version())
    # SIGTERM ends us like Ctrl-C does, so the children are stopped either way.
    signal.signal(signal.SIGTERM, _interrupt)

    def stop() -> None:
        run.children.stop_all()
        if (run.tmp / "profile.raw").exists():
            RESULTS.mkdir(exist_ok=True)
            shutil.copy(run.tmp / "profile.raw", RESULTS / f"licenses-{stamp}.pyspy.txt")

    return drive(
        "licenses",
        stamp,
        tmp,
        keep=args.keep,
        body=lambda: run_all(run),
        stop=stop,
        report=lambda: render(run) if run.rows else None,
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
