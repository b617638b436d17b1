"""HTTP load generator for the benchmarks; runs in its own process so it cannot starve the server.

Two modes, both with one keep-alive connection per client (`bench/http_client.py`,
which costs a fraction of aiohttp's client CPU per request):

- duration: every client POSTs freshly generated license-changing records in a loop
  for `--warmup + --duration` seconds; only requests started after the warm-up and
  finished before the end are counted.
- plan: `--plan FILE` holds one list of bodies per client; each client sends its list
  in order (a non-2xx answer is retried), so per-customer order is preserved when
  the caller puts every customer's records on one client.

The result is one JSON object on stdout; progress and failures go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import uvloop

from bench.http_client import Connection, ProtocolError
from simulator.records import Population

MAX_ATTEMPTS = 8


@dataclass
class Tally:
    """What the clients observed; latencies in seconds."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    first_post: float | None = None
    last_done: float = 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[rank]


async def post(connection: Connection, body: bytes, tally: Tally) -> bool:
    """One POST with no Content-Type header (the simulator's wire format); True on 2xx."""
    try:
        response = await connection.post(body)
        tally.statuses[str(response.status)] += 1
        return 200 <= response.status < 300
    except (OSError, ProtocolError, TimeoutError) as exc:
        tally.statuses[type(exc).__name__] += 1
        return False


async def duration_client(
    connection: Connection,
    population: Population,
    window: tuple[float, float],
    tally: Tally,
) -> None:
    measure_from, measure_to = window
    while True:
        body = json.dumps(population.license_changing().record()).encode()
        started = time.perf_counter()
        if started >= measure_to:
            return
        ok = await post(connection, body, tally)
        finished = time.perf_counter()
        if started >= measure_from and finished <= measure_to:
            tally.latencies.append(finished - started)
            if not ok:
                tally.errors += 1


async def plan_client(connection: Connection, bodies: Sequence[str], tally: Tally) -> None:
    for text in bodies:
        body = text.encode()
        for attempt in range(MAX_ATTEMPTS):
            started = time.perf_counter()
            if tally.first_post is None:
                tally.first_post = time.monotonic()
            ok = await post(connection, body, tally)
            finished = time.perf_counter()
            tally.latencies.append(finished - started)
            if ok:
                break
            tally.errors += 1
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        tally.last_done = time.monotonic()


async def run(args: argparse.Namespace, plan: list[list[str]] | None) -> dict[str, Any]:
    tally = Tally()
    clients = len(plan) if plan is not None else args.concurrency
    connections = [Connection(args.url, args.request_timeout) for _ in range(clients)]
    try:
        if plan is not None:
            started = time.perf_counter()
            await asyncio.gather(*(plan_client(c, b, tally) for c, b in zip(connections, plan, strict=True)))
            elapsed = time.perf_counter() - started
        else:
            # One population per client keeps the generated records valid and cheap;
            # the seeds differ so the clients do not all post the same customers.
            now = time.perf_counter()
            window = (now + args.warmup, now + args.warmup + args.duration)
            await asyncio.gather(
                *(
                    duration_client(
                        connection,
                        Population(max(1, args.customers // args.concurrency), args.seed + i),
                        window,
                        tally,
                    )
                    for i, connection in enumerate(connections)
                )
            )
            elapsed = args.duration
    finally:
        for connection in connections:
            connection.close()
    latencies = sorted(tally.latencies)
    p50 = percentile(latencies, 0.50)
    p99 = percentile(latencies, 0.99)
    return {
        "requests": len(latencies),
        "errors": tally.errors,
        "statuses": dict(tally.statuses),
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": p50 * 1000 if p50 is not None else None,
        "p99_ms": p99 * 1000 if p99 is not None else None,
        "cpu_seconds": time.process_time(),
        "first_post": tally.first_post,
        "last_done": tally.last_done,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--plan", help="JSON file {clients: [[body, ...], ...]}")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan: list[list[str]] | None = None
    if args.plan:
        with open(args.plan, encoding="utf-8") as handle:
            plan = json.load(handle)["clients"]
    # uvloop: ~30% less client CPU per request than asyncio's loop (65 vs 95 us).
    result = uvloop.run(run(args, plan))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
