"""Carts benchmark: AddItem+Get over gRPC at 32 concurrent clients, against baselines in the same run.

    python -m bench.carts [--duration 15] [--concurrency 32] [--items 50]

Starts its own embedded broker and PostgreSQL (`streamapp services`) and, one after
the other on free ports,

  (a) baseline: a bare grpc.aio Cart server that answers without doing anything
      (the ceiling of gRPC plus this load generator on this machine),
  (b) baseline: a naive grpc.aio Cart server, one autocommitted upsert per AddItem
      and one SELECT per Get (no auth, no locks, no outbox, no events),
  (c) the streamapp worker: every client its own user and cart,
  (d) the streamapp worker: all clients on one cart (every AddItem waits for the row lock),

each loaded by a separate process (`--loadgen`) whose clients loop AddItem then Get.
After (c) and (d) it times how long the outbox relay needs to publish what is left.
Prints a markdown table and writes it to bench/results/carts-<timestamp>.md.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
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
import grpc
import jwt

from bench.procstat import BENCH, CpuMeter, postmaster_pid, shares
from bench.stack import Children, free_port, python, read_json_result, start_services, wait_http, wait_line
from streamapp.rpc.carts.protos import cart_pb2, cart_pb2_grpc, item_pb2, item_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "bench-carts-secret-of-at-least-32-bytes"


def token(user: str, *roles: str) -> str:
    claims = {"sub": user, "roles": list(roles), "exp": int(time.time()) + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


# --- load generator (its own process) ---------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    items: list[str] = args.item_ids.split(",")
    shared_cart, shared_user = str(uuid.uuid4()), str(uuid.uuid4())
    latencies: dict[str, list[float]] = {"AddItem": [], "Get": []}
    errors: dict[str, int] = {}
    pairs = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + args.warmup
    end = start + args.duration

    async def client(stub: cart_pb2_grpc.CartStub) -> None:
        nonlocal pairs
        user, cart = (shared_user, shared_cart) if args.shared else (str(uuid.uuid4()), str(uuid.uuid4()))
        metadata = (("authorization", f"Bearer {token(user)}"),)
        rng = random.Random()
        while loop.time() < end:
            began = loop.time()
            add = cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=rng.choice(items), quantity=1)
            try:
                await stub.AddItem(add, metadata=metadata, timeout=10)
                added = loop.time()
                await stub.Get(cart_pb2.CartGetMsg(uuid=cart), metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                continue
            done = loop.time()
            if began >= start and done <= end:
                latencies["AddItem"].append(added - began)
                latencies["Get"].append(done - added)
                pairs += 1

    # One channel per client, as separate shop-front instances would have.
    channels = [grpc.aio.insecure_channel(args.target) for _ in range(args.concurrency)]
    try:
        # The generated stubs carry no type hints.
        await asyncio.gather(*(client(cart_pb2_grpc.CartStub(ch)) for ch in channels))  # type: ignore[no-untyped-call]
    finally:
        await asyncio.gather(*(ch.close(None) for ch in channels))
    calls = len(latencies["AddItem"]) + len(latencies["Get"])
    both = latencies["AddItem"] + latencies["Get"]
    return {
        "pairs_per_s": pairs / args.duration,
        "calls_per_s": calls / args.duration,
        "p50_ms": (percentile(both, 0.5) or 0) * 1000,
        "p99_ms": (percentile(both, 0.99) or 0) * 1000,
        "add_p99_ms": (percentile(latencies["AddItem"], 0.99) or 0) * 1000,
        "get_p99_ms": (percentile(latencies["Get"], 0.99) or 0) * 1000,
        "errors": errors,
        "cpu_seconds": time.process_time(),
    }


# --- baseline servers (their own processes) ------------------------------------------------

NAIVE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_naive_entries (
    cart_uuid uuid NOT NULL, item_uuid uuid NOT NULL, quantity integer NOT NULL,
    PRIMARY KEY (cart_uuid, item_uuid)
)
"""
NAIVE_ADD = """
INSERT INTO bench_naive_entries AS e (cart_uuid, item_uuid, quantity) VALUES ($1, $2, $3)
ON CONFLICT (cart_uuid, item_uuid) DO UPDATE SET quantity = e.quantity + excluded.quantity
"""
NAIVE_GET = """
SELECT i.uuid, i.name, i.price, e.quantity FROM bench_naive_entries e JOIN items i ON i.uuid = e.item_uuid
WHERE e.cart_uuid = $1
"""


class NaiveCart(cart_pb2_grpc.CartServicer):
    def __init__(self, pool: asyncpg.Pool | None) -> None:
        self.pool = pool

    async def AddItem(self, request: cart_pb2.CartAddItemMsg, context: Any) -> cart_pb2.CartAddItemResultMsg:
        if self.pool is not None:
            await self.pool.execute(
                NAIVE_ADD, uuid.UUID(request.cart_uuid), uuid.UUID(request.item_uuid), request.quantity
            )
        return cart_pb2.CartAddItemResultMsg(result=cart_pb2.CartMsg(uuid=request.cart_uuid))

    async def Get(self, request: cart_pb2.CartGetMsg, context: Any) -> cart_pb2.CartGetResultMsg:
        cart = cart_pb2.CartMsg(uuid=request.uuid)
        if self.pool is not None:
            for row in await self.pool.fetch(NAIVE_GET, uuid.UUID(request.uuid)):
                item = item_pb2.ItemMsg(uuid=str(row["uuid"]), name=row["name"], price=float(row["price"]))
                cart.entries.append(cart_pb2.CartMsg.EntryMsg(item=item, quantity=row["quantity"]))
                cart.price_total += float(row["price"]) * row["quantity"]
        return cart_pb2.CartGetResultMsg(result=cart)


async def serve_baseline(args: argparse.Namespace) -> None:
    pool = None
    if args.serve == "naive":
        pool = await asyncpg.create_pool(args.dsn, min_size=8, max_size=8)
        await pool.execute(NAIVE_TABLE)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    cart_pb2_grpc.add_CartServicer_to_server(NaiveCart(pool), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


# --- the driver -------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    throughput: str
    p50: str
    p99: str
    notes: str


@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    children: Children
    env: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    cpu_notes: list[str] = field(default_factory=list)
    services_pid: int = 0


def child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def cpu_note(run: Run, phase: str, seconds: float, cpu: dict[str, float], loadgen: float) -> None:
    named = {k: v for k, v in cpu.items() if k != BENCH}
    named["loadgen"] = loadgen
    run.cpu_notes.append(f"{phase}: " + ", ".join(shares(named, seconds)) + " of one core")


def load(
    run: Run, scenario: str, target: str, items: list[str], roots: dict[str, int], *, shared: bool
) -> Row:
    args = run.args
    argv = python(
        "-m",
        "bench.carts",
        "--loadgen",
        "--target",
        target,
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--item-ids",
        ",".join(items),
        *(["--shared"] if shared else []),
    )
    pg = postmaster_pid(run.tmp / "data" / "pgdata")
    meter = CpuMeter({**roots, "broker+pg": run.services_pid, **({"postgres": pg} if pg else {})})
    proc = run.children.spawn("loadgen", argv, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE)
    time.sleep(args.warmup)
    meter.start()
    result = read_json_result(proc, args.duration + args.warmup + 120)
    cpu_note(run, scenario, args.duration, meter.stop(), result["cpu_seconds"])
    errors = ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "none"
    return Row(
        scenario,
        f"{result['pairs_per_s']:,.0f} AddItem+Get/s ({result['calls_per_s']:,.0f} calls/s)",
        f"{result['p50_ms']:.1f} ms",
        f"{result['p99_ms']:.1f} ms",
        f"AddItem p99 {result['add_p99_ms']:.1f} ms, Get p99 {result['get_p99_ms']:.1f} ms; errors: {errors}",
    )


def baseline(run: Run, kind: str, items: list[str], title: str) -> None:
    port = free_port()
    server = run.children.spawn(
        f"baseline-{kind}",
        python(
            "-m",
            "bench.carts",
            "--serve",
            kind,
            "--port",
            str(port),
            "--dsn",
            run.env["STREAMAPP_DATABASE_URL"],
        ),
        env=child_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    wait_line(server, "READY")
    run.rows.append(load(run, title, f"127.0.0.1:{port}", items, {"server": server.pid}, shared=False))
    run.children.stop(server)


async def create_items(target: str, count: int) -> list[str]:
    metadata = (("authorization", f"Bearer {token(str(uuid.uuid4()), 'admin')}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = item_pb2_grpc.ItemStub(channel)  # type: ignore[no-untyped-call]
        created = [
            await stub.Create(
                item_pb2.ItemCreateMsg(name=f"bench item {i}", price=round(random.uniform(1, 100), 2)),
                metadata=metadata,
                timeout=30,
            )
            for i in range(count)
        ]
    return [item.uuid for item in created]


async def drain_seconds(dsn: str, timeout: float = 120.0) -> tuple[float, int, int]:
    """Seconds until the relay has published every outbox row; the rows left at the start; all rows."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.monotonic()
        left_at_start: int = await conn.fetchval("SELECT count(*) FROM cart_outbox WHERE sent_at IS NULL")
        while time.monotonic() - started < timeout:
            if await conn.fetchval("SELECT count(*) FROM cart_outbox WHERE sent_at IS NULL") == 0:
                break
            await asyncio.sleep(0.05)
        total: int = await conn.fetchval("SELECT count(*) FROM cart_outbox")
        return time.monotonic() - started, left_at_start, total
    finally:
        await conn.close()


def run_all(run: Run) -> None:
    args = run.args
    step(run, "starting streamapp services (broker + PostgreSQL)")
    run.env = start_services(run.children, run.tmp / "data")
    run.services_pid = run.children.children[0].proc.pid
    step(run, "starting the streamapp worker")
    grpc_port, web_port = free_port(), free_port()
    worker = run.children.spawn(
        "worker",
        python("-m", "streamapp", "worker"),
        env=child_env(
            **run.env,
            STREAMAPP_WEB_PORT=str(web_port),
            STREAMAPP_CARTS_GRPC_PORT=str(grpc_port),
            STREAMAPP_CARTS_JWT_SECRET=SECRET,
            STREAMAPP_LOG_LEVEL="WARNING",
            STREAMAPP_DATA_DIR=str(run.tmp / "worker"),
        ),
        cwd=run.tmp,
    )
    wait_http(f"http://127.0.0.1:{web_port}/ready", 120.0, worker)
    target = f"127.0.0.1:{grpc_port}"
    items = asyncio.run(create_items(target, args.items))
    if not args.skip_baselines:
        step(run, "baseline: no-op gRPC Cart server")
        baseline(run, "noop", items, "baseline: grpc.aio, handlers do nothing")
        step(run, "baseline: naive gRPC + one SQL statement per call")
        baseline(run, "naive", items, "baseline: grpc.aio + 1 autocommitted statement per call")
    for shared, title in (
        (False, "streamapp carts: own cart per client"),
        (True, "streamapp carts: all clients on one cart"),
    ):
        step(run, title)
        row = load(run, title, target, items, {"worker": worker.pid}, shared=shared)
        seconds, left, total = asyncio.run(drain_seconds(run.env["STREAMAPP_DATABASE_URL"]))
        row.notes += f"; outbox: {left:,} rows unsent at the end, all published {seconds:.2f} s later"
        row.notes += f" ({total:,} in all)"
        run.rows.append(row)
    step(run, "stopping")


def step(run: Run, what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def render(run: Run, loadavg: str) -> str:
    args = run.args
    lines = [
        f"# streamapp carts benchmark {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        f"`python -m bench.carts --duration {args.duration:g} --concurrency {args.concurrency} "
        f"--items {args.items}` on {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average before start {loadavg}. Each client: AddItem (quantity 1, random item), then Get.",
        "",
        "| scenario | throughput | p50 (per call) | p99 (per call) | notes |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.scenario} | {r.throughput} | {r.p50} | {r.p99} | {r.notes} |" for r in run.rows]
    lines += ["", "CPU use while measuring (share of one core):", ""]
    lines += [f"- {note}" for note in run.cpu_notes]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.carts", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--items", type=int, default=50, help="catalogue size")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    # Internal: the load generator and the baseline servers run as child processes.
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--item-ids", help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=["noop", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.loadgen:
        print(json.dumps(asyncio.run(loadgen(args))))
        return 0
    if args.serve:
        asyncio.run(serve_baseline(args))
        return 0
    loadavg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="streamapp-bench-carts-"))
    run = Run(args, tmp, Children(log_dir=tmp))
    code = 0
    try:
        run_all(run)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        print(f"bench: failed: {exc!r} (logs in {tmp})", file=sys.stderr)
        args.keep, code = True, 1
    finally:
        run.children.stop_all()
    if run.rows:
        table = render(run, loadavg)
        print(table)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"carts-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(table)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
