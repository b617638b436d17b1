"""Licenses throughput by worker count: two ingest processes, then 1, 2 and 3 workers on one stack.

    python -m bench.scale_out [--records 20000] [--counts 1,2,3] [--ingest-processes 2]

One embedded broker and PostgreSQL (`streamapp services`), `--ingest-processes`
ingest processes taking the POSTs, and workers added one at a time. For each
worker count, `--records` license-changing records of a population of its own
are posted through the ingest tier (bench.licenses' load generator and its
end-to-end measure: from the first POST until the last license_history row).
The first count also runs a 500-record warm-up. Prints a markdown table and
writes it to bench/results/scale-out-<timestamp>.md. Not part of the test suite.

The machine's core count bounds the result: with fewer cores than processes,
more workers share the same CPU (the table says how much of it each used).
`--partitions` (default 6) is a multiple of every worker count: with the default
4, a third worker added to two got no licenses partition at all (2/2/0, Faust's
sticky assignor finds 2/2 balanced enough), which the "partitions held" column shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.licenses import Run, Step, build_plan, code_version, end_to_end, start_ingest, start_worker
from bench.stack import Children, drive, start_services


@dataclass
class Measured:
    workers: int
    # licenses.inbound / license-state partitions each worker held while it ran, e.g. "2/1/1".
    shares: str
    throughput: str
    p50: str
    p99: str
    worker_cpu: str
    cpu: str
    notes: str


@dataclass
class Scale:
    run: Run
    rows: list[Measured] = field(default_factory=list)


def last_note(run: Run, prefix: str) -> str:
    return next((note for note in reversed(run.cpu_notes) if note.startswith(prefix)), "")


def held_partitions(worker_base: str) -> int:
    """How many `license-state` partitions (co-partitioned with licenses.inbound) a worker holds."""
    with urllib.request.urlopen(f"{worker_base}/tables/", timeout=10) as response:
        tables = json.load(response)["tables"]
    return len(next(t for t in tables if t["name"] == "license-state")["local_partitions"])


def measure(
    scale: Scale, workers: list[tuple[subprocess.Popen[str], str]], base: str, records: int, seed: int
) -> None:
    run = scale.run
    shares = "/".join(str(held_partitions(worker_base)) for _, worker_base in workers)
    plan = build_plan(
        run.tmp / f"plan-{len(workers)}.json", records, run.args.customers, run.args.concurrency, seed
    )
    row = asyncio.run(end_to_end(run, workers[0][0], base, plan, profile=False))
    # end_to_end notes the CPU of every process it measured: "end to end (...): a x%, b y% of one core"
    # and "end to end: workers ~N us CPU per record".
    per_record = last_note(run, "end to end: workers").removeprefix("end to end: workers ").strip()
    scale.rows.append(
        Measured(
            workers=len(workers),
            shares=shares,
            throughput=row.throughput,
            p50=row.p50,
            p99=row.p99,
            worker_cpu=per_record,
            cpu=last_note(run, "end to end (").partition(": ")[2],
            notes=row.notes,
        )
    )


def run_all(scale: Scale) -> None:
    run = scale.run
    args = run.args
    step = Step()
    step("starting streamapp services (broker + PostgreSQL)")
    services = start_services(run.children, run.tmp / "data")
    run.broker_url = services["STREAMAPP_BROKER_URL"]
    run.database_url = services["STREAMAPP_DATABASE_URL"]
    run.services_pid = run.children.children[0].proc.pid
    counts = sorted(int(c) for c in args.counts.split(","))
    step("starting worker 1")
    workers = [start_worker(run, 1)]
    first = workers[0][0]
    step(f"starting {args.ingest_processes} ingest processes")
    run.ingest, base = start_ingest(run, args.ingest_processes)
    step("warming up (500 records)")
    warm = build_plan(run.tmp / "warm.json", 500, 250, args.concurrency, args.seed + 100)
    asyncio.run(end_to_end(run, first, base, warm, profile=False, measured=False))
    for count in counts:
        while len(workers) < count:
            step(f"starting worker {len(workers) + 1}")
            # /ready answers once the new worker joined the group and recovered its tables.
            workers.append(start_worker(run, len(workers) + 1))
            run.more_workers = [proc for proc, _ in workers[1:]]
        # The others rebalanced along: a moment for their recovery before the clock starts.
        time.sleep(args.settle)
        step(f"{count} worker(s): {args.records:,} records")
        measure(scale, workers, base, args.records, args.seed + count)


def render(scale: Scale) -> str:
    args = scale.run.args
    lines = [
        f"# Licenses throughput by worker count ({scale.run.version})",
        "",
        f"`python -m bench.scale_out --records {args.records} --counts {args.counts} "
        f"--ingest-processes {args.ingest_processes} --partitions {args.partitions} "
        f"--customers {args.customers} --concurrency {args.concurrency}` on {os.cpu_count()} cores, "
        f"load average at start {args.loadavg}.",
        "",
        "| workers | partitions held | records/s (POST -> license_history) | lag p50 | lag p99 "
        "| worker CPU per record |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.workers} | {r.shares} | {r.throughput} | {r.p50} | {r.p99} | {r.worker_cpu} |"
        for r in scale.rows
    ]
    lines += ["", "CPU per process while each count ran (share of one core; `not ours`: the rest):", ""]
    lines += [f"- {r.workers} worker(s): {r.cpu}" for r in scale.rows]
    lines += ["", "Details:", ""]
    lines += [f"- {r.workers} worker(s): {r.notes}" for r in scale.rows]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.scale_out", description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,2,3", help="worker counts, ascending (workers are added)")
    parser.add_argument("--ingest-processes", type=int, default=2)
    parser.add_argument("--records", type=int, default=20_000, help="records per worker count")
    parser.add_argument("--customers", type=int, default=2_000, help="population size")
    parser.add_argument("--concurrency", type=int, default=64, help="HTTP clients")
    parser.add_argument(
        "--partitions",
        type=int,
        default=6,
        help="STREAMAPP_TOPIC_PARTITIONS for every process: a multiple of each worker count, else "
        "Faust's sticky assignor may leave a worker without partitions (4 with 2+1 workers: 2/2/0)",
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after a worker joined")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stall-timeout", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    # What bench.licenses' helpers read from the arguments.
    parser.set_defaults(profile=False, profile_rate=100, workers=1)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ingest_processes < 1:
        raise SystemExit("--ingest-processes must be at least 1")
    args.loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    # Every child (services, workers, ingest, load generator) inherits it.
    os.environ["STREAMAPP_TOPIC_PARTITIONS"] = str(args.partitions)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix="streamapp-bench-scale-out-"))
    run = Run(args, f"{stamp}-{os.getpid()}", tmp, Children(log_dir=tmp), version=code_version())
    scale = Scale(run)
    signal.signal(signal.SIGTERM, _interrupt)
    return drive(
        "scale-out",
        stamp,
        tmp,
        keep=args.keep,
        body=lambda: run_all(scale),
        stop=run.children.stop_all,
        report=lambda: render(scale) if scale.rows else None,
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
