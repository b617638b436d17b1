"""Merchants benchmark: web acceptance with a saturated heuristic pool; heuristic throughput by pool size.

Both against baselines measured in the same run.

    python -m bench.merchants [--duration 15] [--concurrency 16] [--heuristics 40]

Starts its own embedded broker and PostgreSQL (`streamapp services`), a delivery
receiver in this process (aiohttp on 127.0.0.1, 200 to every POST) and, one after
the other, three workers on free ports that share one unique app id (one consumer
group: a restarted worker resumes where the previous one stopped, so no request is
processed twice). Then

  0. calibration: times `merchant_catalogue.identify` here and picks the
     STREAMAPP_MERCHANT_HEURISTIC_REPEAT that costs `--light-seconds` and
     `--heavy-seconds` of CPU per heuristic;
  1. heuristic throughput: `--heuristics` distinct descriptions (light repeat) with
     STREAMAPP_MERCHANT_POOL_SIZE=1, then =2 (a worker restart in between), timed from
     the first POST until the last merchant_requests row is no longer pending;
  2. acceptance: POST /normalize_merchant for `--duration` s each, from `--concurrency`
     clients sharing a schedule of `--paced-rate` req/s (latency) and then back to back
     (closed loop: the acceptance rate), with one more client probing GET /health; first
     with the pool idle (descriptions already in the result cache: the baselines), then
     with enough distinct heavy descriptions queued first to keep every pool process
     busy for both windows. The verdict on the issue's target (p99 < 50 ms while every
     pool process is busy) uses the paced runs.

CPU use per process (worker, pool, broker, PostgreSQL, load generator, and what other
processes on the machine used) is listed per phase: on a shared 2-core machine, read
the numbers with it. Prints a markdown table and writes it to
bench/results/merchants-<timestamp>.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from bench.licenses import Step, cpu_line, ms, rate, status_note, verdict
from bench.merchants_load import transaction
from bench.procstat import MACHINE, STOLEN, CpuMeter, alive, descendants, postmaster_pid
from bench.stack import Children, drive, free_port, python, read_json_result, start_services, wait_http
from streamapp.rules.merchants import identify

ROOT = Path(__file__).resolve().parent.parent
NORMALIZE = "/normalize_merchant"

# The target: the web view answers within this while every pool process is busy.
TARGET_P99_MS = 50.0
# Extra seconds of heavy backlog beyond the measured window (loadgen start-up, contention).
SATURATION_MARGIN = 8.0
# Above this share of one core used by processes not ours, a verdict is flagged unreliable.
NOISE_LIMIT = 0.5


# --- processes ---------------------------------------------------------------------------


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def sweep(pids: Iterable[int], timeout: float = 5.0) -> list[int]:
    """Wait for a stopped worker's descendants to exit; SIGKILL (and return) the ones that do not."""

    pending = list(alive(pids))
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
        pending = list(alive(pending))
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pending


# --- the delivery receiver ----------------------------------------------------------------


class Receiver:
    """Where deliveries go: answers 200 to every POST and counts them."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# --- state ---------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    throughput: str
    p50: str = "-"
    p99: str = "-"
    health_p99: str = "-"
    notes: str = ""


@dataclass
class Tenant:
    client_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"client-id": self.client_id, "Authorization": f"Bearer {self.api_key}"}


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    base: str
    label: str

    def pool_root(self) -> int | None:
        """The multiprocessing forkserver the heuristic pool's processes are forked from."""
        for pid in descendants(self.proc.pid):
            if "multiprocessing.forkserver" in cmdline(pid):
                return pid
        return None


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str
    tmp: Path
    children: Children
    receiver: Receiver
    app_id: str
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    broker_url: str = ""
    database_url: str = ""
    services_pid: int = 0
    seconds_per_repeat: float = 0.0
    light_repeat: int = 1
    heavy_repeat: int = 1
    rows: list[Row] = field(default_factory=list)
    cpu_notes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loadavg_after: str = ""
    step: Step = field(default_factory=Step)

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAPP_")}
        return {**env, "PYTHONPATH": path, **extra}

    def cpu_roots(self, worker: Worker) -> dict[str, int]:
        roots = {"broker": self.services_pid, "worker": worker.proc.pid}
        pool = worker.pool_root()
        if pool is not None:
            roots["pool"] = pool
        pg = postmaster_pid(self.tmp / "data" / "pgdata")
        if pg is not None:
            roots["postgres"] = pg
        return roots


def split_pool(cpu: dict[str, float]) -> dict[str, float]:
    """`worker` is the worker's whole subtree: take the pool's share out of it."""
    cpu = dict(cpu)
    if "pool" in cpu:
        cpu["worker"] = max(0.0, cpu["worker"] - cpu["pool"])
    return cpu


# --- calibration ---------------------------------------------------------------------------


def descriptions(run_id: str, tag: str, count: int) -> list[str]:
    """Distinct (by description_key) card descriptors of one shape, so one costs what another does."""
    return [f"SQ *BENCH {tag.upper()} {run_id} {i:05d} SEATTLE WA" for i in range(count)]


def calibrate(sample: str, repeat: int, rounds: int = 3) -> float:
    """CPU seconds per repeat of the legacy search, best of `rounds`, in this process."""
    identify(sample, 1000)
    best = math.inf
    for _ in range(rounds):
        started = time.process_time()
        identify(sample, repeat)
        best = min(best, time.process_time() - started)
    return best / repeat


# --- worker, clients, requests ---------------------------------------------------------------


async def start_worker(bench: Bench, *, pool_size: int, repeat: int, label: str) -> Worker:
    port = free_port()
    env = bench.env(
        STREAMAPP_ENV="dev",
        STREAMAPP_BROKER_URL=bench.broker_url,
        STREAMAPP_DATABASE_URL=bench.database_url,
        STREAMAPP_WEB_PORT=str(port),
        STREAMAPP_LOG_LEVEL="WARNING",
        STREAMAPP_APP_ID=bench.app_id,
        STREAMAPP_ADMIN_TOKEN=bench.admin_token,
        STREAMAPP_MERCHANT_HEURISTIC_REPEAT=str(repeat),
        STREAMAPP_MERCHANT_POOL_SIZE=str(pool_size),
        STREAMAPP_DELIVERY_ALLOW_NETWORKS="127.0.0.1/32",
        # A worker's working directory collects Faust's `<app id>-data`; keep it in our temp dir.
        STREAMAPP_DATA_DIR=str(bench.tmp / "worker"),
    )
    argv = python("-m", "streamapp", "worker")
    proc = bench.children.spawn(f"worker-{label}", argv, env=env, cwd=bench.tmp)
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(wait_http, f"{base}/ready", 120.0, proc)
    return Worker(proc, base, label)


async def stop_worker(bench: Bench, worker: Worker) -> None:
    family = descendants(worker.proc.pid)
    started = time.monotonic()
    code = await asyncio.to_thread(bench.children.stop, worker.proc)
    took = time.monotonic() - started
    strays = await asyncio.to_thread(sweep, family)
    if code not in (0, None) or took > 5.0:
        bench.notes.append(f"worker {worker.label}: SIGTERM -> exit {code} after {took:.1f} s")
    if strays:
        bench.notes.append(f"worker {worker.label}: {len(strays)} process(es) outlived it and were killed")


async def register(session: aiohttp.ClientSession, bench: Bench, worker: Worker, name: str) -> Tenant:
    client_id = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    async with session.post(
        worker.base + "/create_webhook",
        data=json.dumps({"url": bench.receiver.url(f"/{client_id}"), "client_id": client_id}),
        headers={"Authorization": f"Bearer {bench.admin_token}"},
    ) as response:
        body = await response.json()
        if response.status != 201:
            raise RuntimeError(f"/create_webhook answered {response.status}: {body}")
    return Tenant(client_id, body["api_key"])


async def submit(
    session: aiohttp.ClientSession, worker: Worker, tenant: Tenant, items: Sequence[str], concurrency: int = 8
) -> list[uuid.UUID]:
    """POST one request per description; their request ids, in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(description: str) -> uuid.UUID:
        async with (
            gate,
            session.post(
                worker.base + NORMALIZE,
                data=transaction(description),
                headers=tenant.headers,
                skip_auto_headers=["Content-Type"],
            ) as response,
        ):
            body = await response.json()
            if response.status != 202:
                raise RuntimeError(f"{NORMALIZE} answered {response.status}: {body}")
            return uuid.UUID(body["request_id"])

    return list(await asyncio.gather(*(one(d) for d in items)))


async def wait_done(
    conn: asyncpg.Connection, worker: Worker, ids: Sequence[uuid.UUID], timeout: float
) -> float | None:
    """Poll until no request in `ids` is pending; the monotonic time it was seen, None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        finished = await conn.fetchval(
            "SELECT count(*) FROM merchant_requests"
            " WHERE request_id = ANY($1::uuid[]) AND status <> 'pending'",
            list(ids),
        )
        now = time.monotonic()
        if finished >= len(ids):
            return now
        if now > deadline:
            return None
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker {worker.label} exited with {worker.proc.returncode}")
        await asyncio.sleep(0.05)


async def wait_client_done(conn: asyncpg.Connection, worker: Worker, client_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await conn.fetchval(
            "SELECT count(*) FROM merchant_requests WHERE client_id = $1 AND status = 'pending'", client_id
        )
        if pending == 0:
            return True
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker {worker.label} exited with {worker.proc.returncode}")
        await asyncio.sleep(0.25)
    return False


async def trace(bench: Bench, tenants: Sequence[Tenant]) -> None:
    """--trace: every second, each tenant's requests by status (on a connection of its own)."""
    conn = await asyncpg.connect(bench.database_url)
    started = time.monotonic()
    try:
        while True:
            counts = [f"{t.client_id}: {await count_status(conn, t.client_id)}" for t in tenants]
            bench.step(f"trace +{time.monotonic() - started:5.1f}s " + "; ".join(counts))
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def count_status(conn: asyncpg.Connection, client_id: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM merchant_requests WHERE client_id = $1 GROUP BY status", client_id
    )
    return {str(r["status"]): int(r["n"]) for r in rows}


# --- phase 1: heuristic throughput ------------------------------------------------------------


@dataclass
class Throughput:
    per_second: float
    row: Row


async def throughput(bench: Bench, pool_size: int) -> Throughput:
    args = bench.args
    count = args.heuristics
    worker = await start_worker(
        bench, pool_size=pool_size, repeat=bench.light_repeat, label=f"pool{pool_size}"
    )
    try:
        async with aiohttp.ClientSession() as session:
            conn = await asyncpg.connect(bench.database_url)
            try:
                tenant = await register(session, bench, worker, f"tp{pool_size}")
                # Warm-up: partitions assigned, pool processes started, one heuristic each.
                warm = await submit(
                    session, worker, tenant, descriptions(bench.run_id, f"warm{pool_size}", 2)
                )
                if await wait_done(conn, worker, warm, 120.0) is None:
                    raise RuntimeError(f"pool {pool_size}: the warm-up requests never finished")
                items = descriptions(bench.run_id, f"tp{pool_size}", count)
                meter = CpuMeter(bench.cpu_roots(worker))
                meter.start()
                started = time.monotonic()
                ids = await submit(session, worker, tenant, items)
                posted = time.monotonic() - started
                timeout = 60.0 + 4 * count * args.light_seconds / pool_size
                done_at = await wait_done(conn, worker, ids, timeout)
                seconds = (done_at or time.monotonic()) - started
                cpu = split_pool(meter.stop())
                stats = await conn.fetchrow(
                    """
                    SELECT count(*) FILTER (WHERE status = 'done') AS done,
                           count(*) FILTER (WHERE status = 'failed') AS failed,
                           count(*) FILTER (WHERE cache_hit) AS hits,
                           extract(epoch FROM max(finished_at) - min(created_at)) AS span
                    FROM merchant_requests WHERE request_id = ANY($1::uuid[])
                    """,
                    ids,
                )
            finally:
                await conn.close()
    finally:
        await stop_worker(bench, worker)
    finished = int(stats["done"]) + int(stats["failed"])
    per_second = finished / seconds if seconds > 0 else 0.0
    bench.cpu_notes.append(cpu_line(f"heuristics, pool of {pool_size}", seconds, cpu, None))
    pool_cpu = cpu.get("pool")
    per_heuristic = f"{pool_cpu / count:.2f} s" if pool_cpu is not None else "?"
    span = float(stats["span"]) if stats["span"] is not None else math.nan
    notes = (
        f"{count} distinct descriptions, repeat {bench.light_repeat:,} (~{args.light_seconds:g} s CPU "
        f"each as calibrated here; {per_heuristic} CPU each in the pool); first POST -> last row "
        f"done {seconds:.2f} s (POSTs took {posted:.2f} s; first created_at -> last finished_at "
        f"{span:.2f} s); {stats['done']} done, {stats['failed']} failed, {stats['hits']} cache hits"
        + ("" if done_at is not None else f"; TIMED OUT after {timeout:.0f} s")
    )
    return Throughput(
        per_second, Row(f"heuristics, pool of {pool_size}", rate2(per_second, "heuristics/s"), notes=notes)
    )


def rate2(value: float, unit: str) -> str:
    """Small rates need decimals (bench.licenses.rate rounds to whole units)."""
    return f"{value:.2f} {unit}" if value < 100 else rate(value, unit)


# --- phase 2: acceptance while the pool is saturated ----------------------------------------------


@dataclass
class Load:
    result: dict[str, Any]
    cpu: dict[str, float]
    seconds: float
    started_at: datetime


async def load(
    bench: Bench, worker: Worker, tenant: Tenant, items: Sequence[str], phase: str, rate: float = 0.0
) -> Load:
    """One load generator run: closed loop, or `rate` requests/s when it is positive."""
    args = bench.args
    path = bench.tmp / f"descriptions-{tenant.client_id}.json"
    path.write_text(json.dumps(list(items)))
    argv = python(
        "-m",
        "bench.merchants_load",
        "--base",
        worker.base,
        "--client-id",
        tenant.client_id,
        "--api-key",
        tenant.api_key,
        "--descriptions",
        str(path),
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--health-interval",
        str(args.health_interval),
        "--rate",
        str(rate),
    )
    meter = CpuMeter(bench.cpu_roots(worker))
    meter.start()
    started, started_at = time.monotonic(), datetime.now(UTC)
    proc = bench.children.spawn("loadgen", argv, env=bench.env(), cwd=ROOT, stdout=subprocess.PIPE)
    try:
        result = await asyncio.to_thread(read_json_result, proc, args.duration + args.warmup + 120)
    finally:
        await asyncio.to_thread(bench.children.stop, proc)
    seconds = time.monotonic() - started
    cpu = split_pool(meter.stop())
    bench.cpu_notes.append(cpu_line(phase, seconds, cpu, result["cpu_seconds"]))
    return Load(result, cpu, seconds, started_at)


def load_row(scenario: str, outcome: Load, notes: str) -> Row:
    posts, health = outcome.result["post"], outcome.result["health"]
    return Row(
        scenario,
        rate(posts["rps"], "req/s"),
        ms(posts["p50_ms"]),
        ms(posts["p99_ms"]),
        ms(health["p99_ms"]),
        f"{status_note(posts)}; POST max {ms(posts['max_ms'])}; GET /health: {health['requests']} probes, "
        f"p50 {ms(health['p50_ms'])}, max {ms(health['max_ms'])}, {health['errors']} errors"
        + (f"; {notes}" if notes else ""),
    )


async def acceptance(bench: Bench) -> None:
    worker = await start_worker(
        bench, pool_size=bench.args.pool_size, repeat=bench.heavy_repeat, label="acceptance"
    )
    try:
        async with aiohttp.ClientSession() as session:
            conn = await asyncpg.connect(bench.database_url)
            try:
                await acceptance_phases(bench, worker, session, conn)
            finally:
                await conn.close()
    finally:
        await stop_worker(bench, worker)


async def acceptance_phases(
    bench: Bench, worker: Worker, session: aiohttp.ClientSession, conn: asyncpg.Connection
) -> None:
    args, step = bench.args, bench.step
    pool_size, paced = args.pool_size, args.paced_rate
    clients = f"{args.concurrency} clients"
    heavy_note = f"repeat {bench.heavy_repeat:,} (~{args.heavy_seconds:g} s CPU per heuristic)"
    # The cached descriptions: one heuristic each now, cache hits from then on.
    cached = descriptions(bench.run_id, "cached", args.cached)
    idle = await register(session, bench, worker, "idle")
    step(f"acceptance: putting {len(cached)} descriptions in the result cache ({heavy_note})")
    warm = await submit(session, worker, idle, cached)
    if await wait_done(conn, worker, warm, 120.0 + len(cached) * args.heavy_seconds * 4) is None:
        raise RuntimeError("the cache warm-up requests never finished")

    # Baselines, pool idle: the paced load first (the agent keeps up with it), then the closed loop.
    idle_paced: Load | None = None
    if paced:
        step(f"acceptance baseline: pool idle, {paced:g} req/s, {args.duration:g} s")
        idle_paced = await load(bench, worker, idle, cached, f"POSTs at {paced:g}/s, pool idle", paced)
        bench.rows.append(load_row(f"baseline: POST at {paced:g} req/s, pool idle", idle_paced, ""))
    step(f"acceptance baseline: pool idle, {clients}, {args.duration:g} s")
    idle_closed = await load(bench, worker, idle, cached, "POSTs closed loop, pool idle")
    drain_started = time.monotonic()
    drained = await wait_client_done(conn, worker, idle.client_id, args.drain_timeout)
    drain = time.monotonic() - drain_started
    answered = await conn.fetchrow(
        """
        SELECT count(*) AS n, extract(epoch FROM max(finished_at) - min(created_at)) AS span
        FROM merchant_requests WHERE client_id = $1 AND cache_hit AND created_at >= $2
        """,
        idle.client_id,
        idle_closed.started_at,
    )
    span = float(answered["span"] or 0.0)
    agent_rate = int(answered["n"]) / span if span > 0 else 0.0
    bench.rows.append(
        load_row(
            f"baseline: POST, {clients} closed loop, pool idle",
            idle_closed,
            f"the agent answered these {answered['n']:,} cache hits at ~{agent_rate:,.0f}/s "
            "(first POST -> last answer); its backlog "
            + (
                f"drained {drain:.1f} s after the load stopped"
                if drained
                else f"NOT drained in {drain:.0f} s"
            ),
        )
    )

    # Enough distinct heavy descriptions for every pool process for every saturated window. They
    # are queued before the load starts, so they sit ahead of its (cached) requests in the stream.
    windows = 2 if paced else 1
    seconds = windows * (args.warmup + args.duration + 1.0) + SATURATION_MARGIN
    heavy_count = math.ceil(pool_size * seconds / args.heavy_seconds)
    heavy_tenant = await register(session, bench, worker, "heavy")
    busy = await register(session, bench, worker, "busy")
    step(f"acceptance: queueing {heavy_count} distinct heavy descriptions for {pool_size} pool processes")
    heavy_ids = await submit(session, worker, heavy_tenant, descriptions(bench.run_id, "heavy", heavy_count))
    tracer = asyncio.create_task(trace(bench, [heavy_tenant, busy])) if args.trace else None
    await asyncio.sleep(1.0)  # the first batch reaches the pool
    busy_paced: Load | None = None
    if paced:
        step(f"acceptance: pool saturated, {paced:g} req/s, {args.duration:g} s")
        busy_paced = await load(bench, worker, busy, cached, f"POSTs at {paced:g}/s, pool saturated", paced)
    step(f"acceptance: pool saturated, {clients}, {args.duration:g} s")
    busy_closed = await load(bench, worker, busy, cached, "POSTs closed loop, pool saturated")
    left = await conn.fetchval(
        "SELECT count(*) FROM merchant_requests WHERE request_id = ANY($1::uuid[]) AND status = 'pending'",
        heavy_ids,
    )
    during = await count_status(conn, busy.client_id)
    if tracer is not None:
        tracer.cancel()
    still_busy = left > 0

    def pool_note(outcome: Load) -> str:
        used = outcome.cpu.get("pool")
        return f"the pool used {used / outcome.seconds:.2f} cores of {os.cpu_count()}" if used else ""

    if busy_paced is not None:
        bench.rows.append(
            load_row(
                f"streamapp: POST at {paced:g} req/s, every pool process busy",
                busy_paced,
                pool_note(busy_paced),
            )
        )
    bench.rows.append(
        load_row(
            f"streamapp: POST, {clients} closed loop, every pool process busy",
            busy_closed,
            f"{pool_note(busy_closed)}; {heavy_count} distinct heavy descriptions ({heavy_note}) queued "
            f"before the saturated runs, {left} still pending after them (pool busy throughout: "
            f"{'yes' if still_busy else 'NO'}); {during.get('done', 0):,} of the "
            f"{sum(during.values()):,} cache-hit requests posted meanwhile had been answered",
        )
    )

    def others(outcome: Load) -> float:
        """Share of one core that processes not ours used during the run."""
        loadgen = float(outcome.result["cpu_seconds"])
        ours = sum(v for k, v in outcome.cpu.items() if k not in (MACHINE, STOLEN)) + loadgen
        return max(0.0, outcome.cpu.get(MACHINE, 0.0) - ours) / outcome.seconds

    # The verdict: at the paced rate when measured (latency, not queueing behind our own clients).
    judged, before = (busy_paced, idle_paced) if busy_paced and idle_paced else (busy_closed, idle_closed)
    load_name = f"{paced:g} req/s" if busy_paced else f"{clients}"
    posts, health = judged.result["post"], judged.result["health"]
    post_ok = posts["p99_ms"] is not None and posts["p99_ms"] < TARGET_P99_MS and posts["errors"] == 0
    health_ok = health["p99_ms"] is not None and health["p99_ms"] < TARGET_P99_MS and health["errors"] == 0
    bench.rows.append(
        Row(
            f"target (issue): p99 < {TARGET_P99_MS:.0f} ms while every pool process is busy",
            "-",
            p99=f"POST: {verdict(post_ok and still_busy)}",
            health_p99=verdict(health_ok and still_busy),
            notes=(
                f"at {load_name}: POST p99 {ms(posts['p99_ms'])} (pool idle: "
                f"{ms(before.result['post']['p99_ms'])}), GET /health p99 {ms(health['p99_ms'])} "
                f"(pool idle: {ms(before.result['health']['p99_ms'])}); closed-loop acceptance "
                f"{busy_closed.result['post']['rps'] / max(1e-9, idle_closed.result['post']['rps']):.0%} "
                "of the idle pool's"
                + (
                    f"; UNRELIABLE: processes not ours used {others(judged):.0%} (saturated) and "
                    f"{others(before):.0%} (idle) of a core during these runs"
                    if max(others(judged), others(before)) > NOISE_LIMIT
                    else ""
                )
            ),
        )
    )


# --- driver -------------------------------------------------------------------------------------


def render(bench: Bench) -> str:
    args = bench.args
    command = " ".join(["python -m bench.merchants", *args.argv])
    lines = [
        f"# streamapp merchants benchmark {bench.run_id}",
        "",
        f"`{command}` on {os.cpu_count()} cores, Python {sys.version.split()[0]}; load average "
        f"(1/5/15 min) before start {args.loadavg}, at the end {bench.loadavg_after}",
        "",
        f"Calibration: `identify()` costs {bench.seconds_per_repeat * 1e9:.0f} ns of CPU per repeat in "
        f"the bench process, so STREAMAPP_MERCHANT_HEURISTIC_REPEAT={bench.light_repeat:,} "
        f"(~{args.light_seconds:g} s) for the throughput runs and {bench.heavy_repeat:,} "
        f"(~{args.heavy_seconds:g} s) for the saturation run (pool of {args.pool_size}"
        + f"); {args.concurrency} POST clients, closed loop"
        + (f" or sharing a schedule of {args.paced_rate:g} req/s" if args.paced_rate else "")
        + f", + 1 GET /health probe every {args.health_interval:g} s; "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured per run.",
        "",
        "| scenario | throughput | p50 | p99 | GET /health p99 | notes |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scenario} | {r.throughput} | {r.p50} | {r.p99} | {r.health_p99} | {r.notes} |"
        for r in bench.rows
    ]
    if bench.cpu_notes:
        lines += ["", f"CPU use per phase (share of one core; the machine has {os.cpu_count()}):", ""]
        lines += [f"- {note}" for note in bench.cpu_notes]
    if bench.notes:
        lines += ["", "Problems seen:", ""]
        lines += [f"- {note}" for note in bench.notes]
    return "\n".join(lines) + "\n"


async def wait_for_quiet(max_load: float, patience: float, step: Step) -> None:
    deadline = time.monotonic() + patience
    while (load1 := os.getloadavg()[0]) > max_load and time.monotonic() < deadline:
        step(f"load average {load1:.2f} > {max_load:g}; waiting 30 s")
        await asyncio.sleep(30)


async def run_all(bench: Bench) -> None:
    args, step = bench.args, bench.step
    if args.max_load:
        await wait_for_quiet(args.max_load, args.max_wait, step)
        args.loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())

    step("calibrating the heuristic in this process")
    bench.seconds_per_repeat = calibrate(
        descriptions(bench.run_id, "calibrate", 1)[0], args.calibration_repeat
    )
    bench.light_repeat = max(1, round(args.light_seconds / bench.seconds_per_repeat))
    bench.heavy_repeat = max(1, round(args.heavy_seconds / bench.seconds_per_repeat))

    await bench.receiver.start()
    try:
        step("starting streamapp services (broker + PostgreSQL)")
        services = await asyncio.to_thread(start_services, bench.children, bench.tmp / "data")
        bench.broker_url = services["STREAMAPP_BROKER_URL"]
        bench.database_url = services["STREAMAPP_DATABASE_URL"]
        bench.services_pid = bench.children.children[0].proc.pid

        if not args.skip_throughput:
            results: dict[int, Throughput] = {}
            for size in (1, 2):
                step(f"heuristic throughput: pool of {size}, {args.heuristics} descriptions")
                results[size] = await throughput(bench, size)
                bench.rows.append(results[size].row)
            if results[1].per_second > 0:
                ratio = results[2].per_second / results[1].per_second
                bench.rows.append(
                    Row(
                        "speed-up, pool of 2 over pool of 1",
                        f"x{ratio:.2f}",
                        notes=f"ideal x2.00 on {os.cpu_count()} cores",
                    )
                )
        if not args.skip_acceptance:
            await acceptance(bench)
        step(f"stopping ({bench.receiver.received:,} deliveries received)")
    finally:
        await bench.receiver.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.merchants", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per load")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    parser.add_argument("--concurrency", type=int, default=16, help="POST clients")
    parser.add_argument(
        "--paced-rate", type=float, default=50.0, help="req/s of the paced runs (0: skip them)"
    )
    parser.add_argument("--health-interval", type=float, default=0.02, help="seconds between probes")
    parser.add_argument("--heuristics", type=int, default=40, help="descriptions per throughput run")
    parser.add_argument("--light-seconds", type=float, default=0.2, help="CPU per heuristic, throughput")
    parser.add_argument("--heavy-seconds", type=float, default=1.5, help="CPU per heuristic, saturation")
    parser.add_argument("--calibration-repeat", type=int, default=1_000_000)
    parser.add_argument("--cached", type=int, default=4, help="cache-hit descriptions the load cycles")
    parser.add_argument(
        "--pool-size", type=int, default=os.cpu_count() or 1, help="pool processes in the saturation run"
    )
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-acceptance", action="store_true")
    parser.add_argument("--max-load", type=float, default=0.0, help="first wait for loadavg(1 min) <= this")
    parser.add_argument("--max-wait", type=float, default=600.0, help="... for at most this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--trace", action="store_true", help="print request states while saturated")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{os.getpid()}"
    # Not "streamapp-bench-*": other jobs on this machine clean that pattern up.
    tmp = Path(tempfile.mkdtemp(prefix="merchants-bench-"))
    bench = Bench(args, run_id, tmp, Children(log_dir=tmp), Receiver(), app_id=f"bench-merchants-{run_id}")

    def stop() -> None:
        bench.loadavg_after = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        bench.children.stop_all()

    return drive(
        "merchants",
        stamp,
        tmp,
        keep=args.keep,
        body=lambda: asyncio.run(run_all(bench)),
        stop=stop,
        report=lambda: render(bench) if bench.rows else None,
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
