"""Tasks pipeline benchmark: events/s from POST to PostgreSQL, and report latency, with 1,000 users.

    python -m bench.tasks [--events 20000] [--users 1000] [--concurrency 32] [--interval 5]

Starts its own embedded stack and worker (free ports), then
  (a) baseline: the naive aiohttp server (one INSERT per request) under the same plan,
  (b) end to end: the plan's task events (shuffled, 10% duplicated, like the TODO app
      sends them) POSTed to /tasks/webhook until every distinct event has its
      task_events row,
  (c) report latency: for every (user, interval) report of the run, from the
      interval's end to the first revision stored, and to the last one.
Prints a markdown table and writes it to bench/results/tasks-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.licenses import ROOT, Row, Step, cpu_line, ms, rate
from bench.procstat import CpuMeter, postmaster_pid
from bench.stack import Children, free_port, python, read_json_result, start_services, wait_http, wait_line
from simulator.tasks import TaskScript, deliveries
from streamapp.models.tasks import TaskWebhook

RESULTS = Path(__file__).resolve().parent / "results"


def build_plan(path: Path, args: argparse.Namespace, start: datetime) -> tuple[int, list[str]]:
    """Bodies spread over the clients; returns (distinct events, user ids)."""
    script = TaskScript(users=args.users, seed=args.seed, start=start)
    step = timedelta(seconds=args.span / args.events)
    events = [script.next_event(step) for _ in range(args.events)]
    sent = deliveries(events, random.Random(args.seed))
    clients: list[list[str]] = [[] for _ in range(args.concurrency)]
    for i, body in enumerate(sent):
        # "Id" lets the naive baseline server take the same bodies; the webhook ignores it.
        clients[i % args.concurrency].append(json.dumps({**body, "Id": body["metadata"]["id"]}))
    path.write_text(json.dumps({"clients": clients}))
    distinct = len({TaskWebhook.model_validate(e).event_id() for e in events})
    users = sorted({e["metadata"]["userId"] for e in events})
    return distinct, users


def loadgen(children: Children, url: str, plan: Path, concurrency: int) -> subprocess.Popen[str]:
    argv = python("-m", "bench.loadgen", "--url", url, "--concurrency", str(concurrency), "--plan", str(plan))
    return children.spawn("loadgen", argv, cwd=ROOT, stdout=subprocess.PIPE)


def naive(children: Children, dsn: str, plan: Path, args: argparse.Namespace, sent: int) -> Row:
    port = free_port()
    server = children.spawn(
        "naive-server",
        python("-m", "bench.naive_server", "--dsn", dsn, "--port", str(port)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    wait_line(server, "READY")
    result = read_json_result(
        loadgen(children, f"http://127.0.0.1:{port}/salesforce/webhook", plan, args.concurrency), 600
    )
    children.stop(server)
    return Row(
        "baseline: naive aiohttp, 1 INSERT/request",
        rate(result["rps"], "events/s"),
        ms(result["p50_ms"]),
        ms(result["p99_ms"]),
        f"{sent:,} POSTs, {result['errors']} errors; no broker, no validation, no state",
    )


async def count_events(conn: asyncpg.Connection, users: list[str]) -> int:
    value: int = await conn.fetchval(
        "SELECT count(*) FROM task_events e JOIN tasks t USING (task_id) WHERE t.user_id = ANY($1)", users
    )
    return value


async def end_to_end(
    children: Children,
    dsn: str,
    base: str,
    plan: Path,
    args: argparse.Namespace,
    distinct: int,
    users: list[str],
) -> tuple[Row, dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        proc = loadgen(children, base + "/tasks/webhook", plan, args.concurrency)
        count, done_at = 0, None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            count = await count_events(conn, users)
            if count >= distinct:
                done_at = time.monotonic()
                break
        result = await asyncio.to_thread(read_json_result, proc, 600)
    finally:
        await conn.close()
    first = result["first_post"] or time.monotonic()
    elapsed = (done_at or time.monotonic()) - first
    row = Row(
        "streamapp: end to end, POST -> task_events row",
        rate(distinct / elapsed if done_at else count / elapsed, "events/s"),
        ms(result["p50_ms"]),
        ms(result["p99_ms"]),
        f"{distinct:,} distinct events ({result['requests']:,} POSTs incl. duplicates) for "
        f"{len(users):,} users in {elapsed:.1f} s{'' if done_at else ' (TIMED OUT)'}; p50/p99 = POST latency",
    )
    return row, result


async def report_latency(dsn: str, users: list[str], since: datetime, quiet: float) -> Row:
    """Wait until no new revision appears for `quiet` s, then measure end -> stored."""
    conn = await asyncpg.connect(dsn)
    try:
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < quiet:
            await asyncio.sleep(0.5)
            n = await conn.fetchval("SELECT count(*) FROM task_reports WHERE user_id = ANY($1)", users)
            if n != last:
                last, stable_since = n, time.monotonic()
        row = await conn.fetchrow(
            """
            WITH r AS (
                SELECT user_id, start_at, end_at, min(computed_at) AS first_at, max(computed_at) AS last_at,
                       max(revision) AS revisions
                FROM task_reports WHERE user_id = ANY($1) AND end_at > $2 GROUP BY 1, 2, 3
            )
            SELECT count(*) AS reports, count(*) FILTER (WHERE revisions > 1) AS amended,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY first_lag) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY first_lag) AS p99,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY last_lag) AS final99
            FROM (SELECT *, extract(epoch FROM first_at - end_at) AS first_lag,
                         extract(epoch FROM last_at - end_at) AS last_lag FROM r) AS lags
            """,
            users,
            since,
        )
    finally:
        await conn.close()
    p50 = float(row["p50"]) * 1000 if row["p50"] is not None else None
    p99 = float(row["p99"]) * 1000 if row["p99"] is not None else None
    final = float(row["final99"]) * 1000 if row["final99"] is not None else None
    return Row(
        "streamapp: report latency, interval end -> report stored",
        f"{row['reports']:,} reports",
        ms(p50),
        ms(p99),
        f"first revision; {row['amended']:,} reports amended by events that arrived after the interval "
        f"ended (last revision p99 {ms(final)})",
    )


def run_all(
    args: argparse.Namespace, tmp: Path, children: Children, rows: list[Row], notes: list[str]
) -> None:
    step = Step()
    step("starting streamapp services (broker + PostgreSQL)")
    services = start_services(children, tmp / "data")
    dsn = services["STREAMAPP_DATABASE_URL"]
    plan = tmp / "plan.json"
    step(f"naive baseline: {args.events:,} events")
    distinct, users = build_plan(plan, args, datetime.now(UTC))
    sent = sum(len(c) for c in json.loads(plan.read_text())["clients"])
    rows.append(naive(children, dsn, plan, args, sent))

    step("starting the streamapp worker")
    port = free_port()
    env = {
        **os.environ,
        **services,
        "STREAMAPP_WEB_PORT": str(port),
        "STREAMAPP_CARTS_GRPC_PORT": str(free_port()),
        "STREAMAPP_LOG_LEVEL": "WARNING",
        "STREAMAPP_APP_ID": f"bench-tasks-{os.getpid()}",
        "STREAMAPP_DATA_DIR": str(tmp / "worker"),
        "STREAMAPP_REPORT_INTERVAL": str(args.interval),
        "STREAMAPP_REPORT_GRACE": "600",
        "STREAMAPP_REPORT_TICK": "0.25",
    }
    worker = children.spawn("worker", python("-m", "streamapp", "worker"), env=env, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/ready", 120.0, worker)
    # A fresh plan whose event times start now, so its intervals close during the run.
    start = datetime.now(UTC) + timedelta(seconds=2)
    distinct, users = build_plan(plan, args, start)
    roots = {"broker": children.children[0].proc.pid, "worker": worker.pid}
    pg = postmaster_pid(tmp / "data" / "pgdata")
    if pg is not None:
        roots["postgres"] = pg
    meter = CpuMeter(roots)
    meter.start()
    began = time.monotonic()
    step(f"end to end: {args.events:,} events for {args.users:,} users")
    e2e, result = asyncio.run(end_to_end(children, dsn, base, plan, args, distinct, users))
    rows.append(e2e)
    notes.append(cpu_line("end to end", time.monotonic() - began, meter.stop(), result["cpu_seconds"]))
    step("waiting for the reports to settle")
    rows.append(asyncio.run(report_latency(dsn, users, start, quiet=max(5.0, 2 * args.interval))))
    step("stopping")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.tasks", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--interval", type=float, default=5.0, help="STREAMAPP_REPORT_INTERVAL for the run")
    parser.add_argument("--span", type=float, default=20.0, help="seconds of event time the events cover")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="streamapp-bench-tasks-"))
    children = Children(log_dir=tmp)
    rows: list[Row] = []
    notes: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 0
    try:
        run_all(args, tmp, children, rows, notes)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        print(f"bench: failed: {exc!r} (logs in {tmp})", file=sys.stderr)
        code = 1
    finally:
        children.stop_all()
    lines = [
        f"# streamapp tasks benchmark {time.strftime('%Y%m%d-%H%M%S')}",
        "",
        f"`python -m bench.tasks --events {args.events} --users {args.users} "
        f"--concurrency {args.concurrency} --interval {args.interval:g}` on {os.cpu_count()} cores; "
        f"load average before start {loadavg}",
        "",
        "| scenario | throughput | p50 | p99 | notes |",
        "|---|---|---|---|---|",
        *(f"| {r.scenario} | {r.throughput} | {r.p50} | {r.p99} | {r.notes} |" for r in rows),
        "",
        *(f"- {n}" for n in notes),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"tasks-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
