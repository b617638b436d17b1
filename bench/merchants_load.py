"""Load for the merchants benchmark; runs in its own process so it cannot starve the worker.

`--concurrency` clients POST /normalize_merchant (one keep-alive connection each),
authenticated as one client and cycling through the descriptions in
`--descriptions` (a JSON list), while one more client GETs /health every
`--health-interval` seconds. Without `--rate` the clients post back to back
(closed loop: the acceptance rate) and only requests started after the warm-up
and finished before the end are counted. With `--rate R` they share a fixed
schedule of R requests/s; a request's latency runs from its scheduled time (so a
stalled server is not hidden by requests it kept us from sending), and every
request scheduled inside the measured window is counted.

The result is one JSON object on stdout: {"post": {...}, "health": {...}, "cpu_seconds": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.http_client import Connection
from bench.loadgen import Tally, percentile, post


def transaction(description: str) -> bytes:
    return json.dumps({"date": "2021-04-01", "description": description, "amount": "12.99"}).encode()


async def post_client(
    connection: Connection,
    bodies: Sequence[bytes],
    first: int,
    window: tuple[float, float],
    tally: Tally,
) -> None:
    measure_from, measure_to = window
    index = first
    while True:
        started = time.perf_counter()
        if started >= measure_to:
            return
        ok = await post(connection, bodies[index % len(bodies)], tally)
        index += 1
        finished = time.perf_counter()
        if started >= measure_from and finished <= measure_to:
            tally.latencies.append(finished - started)
            if not ok:
                tally.errors += 1


async def paced_client(
    connection: Connection,
    bodies: Sequence[bytes],
    first: int,
    schedule: tuple[float, float],
    window: tuple[float, float],
    tally: Tally,
) -> None:
    """Requests at `start + k * interval`; late ones go at once and count their lateness."""
    start, interval = schedule
    measure_from, measure_to = window
    index = first
    while (scheduled := start + (index - first) * interval) < measure_to:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        ok = await post(connection, bodies[index % len(bodies)], tally)
        index += 1
        if scheduled >= measure_from:
            tally.latencies.append(time.perf_counter() - scheduled)
            if not ok:
                tally.errors += 1


async def health_client(
    session: aiohttp.ClientSession, url: str, interval: float, window: tuple[float, float], tally: Tally
) -> None:
    measure_from, measure_to = window
    while True:
        started = time.perf_counter()
        if started >= measure_to:
            return
        ok = False
        try:
            async with session.get(url) as response:
                await response.read()
                tally.statuses[str(response.status)] += 1
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.statuses[type(exc).__name__] += 1
        finished = time.perf_counter()
        if started >= measure_from and finished <= measure_to:
            tally.latencies.append(finished - started)
            if not ok:
                tally.errors += 1
        await asyncio.sleep(interval)


def summary(tally: Tally, seconds: float) -> dict[str, Any]:
    latencies = sorted(tally.latencies)

    def in_ms(q: float) -> float | None:
        value = percentile(latencies, q)
        return value * 1000 if value is not None else None

    return {
        "requests": len(latencies),
        "errors": tally.errors,
        "statuses": dict(tally.statuses),
        "rps": len(latencies) / seconds if seconds > 0 else 0.0,
        "p50_ms": in_ms(0.50),
        "p99_ms": in_ms(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else None,
    }


async def run(args: argparse.Namespace, descriptions: Sequence[str]) -> dict[str, Any]:
    bodies = [transaction(d) for d in descriptions]
    posts, health = Tally(), Tally()
    auth = {"client-id": args.client_id, "Authorization": f"Bearer {args.api_key}"}
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    url = args.base + "/normalize_merchant"
    connections = [Connection(url, args.request_timeout, headers=auth) for _ in range(args.concurrency)]
    try:
        async with aiohttp.ClientSession(timeout=timeout) as probe:
            now = time.perf_counter()
            window = (now + args.warmup, now + args.warmup + args.duration)
            if args.rate > 0:
                interval = args.concurrency / args.rate
                clients = [
                    paced_client(
                        c, bodies, i, (now + i * interval / args.concurrency, interval), window, posts
                    )
                    for i, c in enumerate(connections)
                ]
            else:
                clients = [post_client(c, bodies, i, window, posts) for i, c in enumerate(connections)]
            await asyncio.gather(
                health_client(probe, args.base + "/health", args.health_interval, window, health), *clients
            )
    finally:
        for connection in connections:
            connection.close()
    return {
        "post": summary(posts, args.duration),
        "health": summary(health, args.duration),
        "cpu_seconds": time.process_time(),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.merchants_load", description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the worker, http://host:port")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--descriptions", required=True, help="JSON file: a list of descriptions")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s in all; 0: closed loop")
    parser.add_argument("--health-interval", type=float, default=0.02)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with open(args.descriptions, encoding="utf-8") as handle:
        descriptions: list[str] = json.load(handle)
    result = asyncio.run(run(args, descriptions))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
