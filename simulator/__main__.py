"""Post customer records to the Salesforce webhook at a steady rate, with a progress line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import aiohttp

from simulator.records import Population
from simulator.tasks import TaskScript, deliveries

PATHS = {"salesforce": "/salesforce/webhook", "tasks": "/tasks/webhook"}


async def post_record(
    session: aiohttp.ClientSession, url: str, body: bytes, secret: str | None = None
) -> int:
    """POST with no Content-Type header, exactly like the legacy simulator; retry while down."""
    delay = 0.5
    while True:
        try:
            headers = {"X-Webhook-Secret": secret} if secret else {}
            async with session.post(
                url, data=body, headers=headers, skip_auto_headers=["Content-Type"]
            ) as response:
                await response.read()
                if response.status < 500:
                    return response.status
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


def bodies(args: argparse.Namespace) -> Iterator[tuple[bytes, str]]:
    """(body, label) pairs for the chosen mode, forever."""
    if args.mode == "tasks":
        script = TaskScript(users=args.users, seed=args.seed)
        rng = random.Random(args.seed)
        while True:
            window = [script.next_event(timedelta(milliseconds=max(1.0, 60_000 / max(args.rate, 1))))]
            window += [script.next_event() for _ in range(4)]
            for event in deliveries(window, rng):
                yield json.dumps(event).encode(), f"{event['event']} {event['metadata']['id']}"
    population = Population(args.customers, args.seed)
    while True:
        customer = population.change()
        yield json.dumps(customer.record()).encode(), customer.id


async def run(args: argparse.Namespace) -> int:
    interval = 60.0 / args.rate if args.rate > 0 else 0.0
    url = args.url or args.base.rstrip("/") + PATHS[args.mode]
    sent = 0
    statuses: dict[int, int] = {}
    started = time.monotonic()
    source = bodies(args)
    async with aiohttp.ClientSession() as session:
        while args.count == 0 or sent < args.count:
            body, label = next(source)
            status = await post_record(session, url, body, args.secret)
            sent += 1
            statuses[status] = statuses.get(status, 0) + 1
            elapsed = time.monotonic() - started
            summary = " ".join(f"{code}:{n}" for code, n in sorted(statuses.items()))
            print(
                f"\rsimulator: sent {sent} {args.mode} events in {elapsed:.0f}s [{summary}] last={label}",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if interval:
                await asyncio.sleep(interval)
    print(file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simulator", description=__doc__)
    parser.add_argument(
        "--mode",
        choices=sorted(PATHS),
        default="salesforce",
        help="salesforce: customer records; tasks: TODO-app task events (out of order, duplicated)",
    )
    parser.add_argument("--base", default="http://127.0.0.1:6066", help="the worker's web address")
    parser.add_argument(
        "--url", default=None, help="the full endpoint URL (default: --base + the mode's path)"
    )
    parser.add_argument("--users", type=int, default=5, help="task users (tasks mode)")
    parser.add_argument("--rate", type=float, default=6.0, help="records per minute (0: as fast as possible)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--customers", type=int, default=10, help="size of the customer population")
    parser.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")
    parser.add_argument(
        "--secret",
        default=os.environ.get("STREAMAPP_SALESFORCE_SECRET") or None,
        help="webhook shared secret (default: $STREAMAPP_SALESFORCE_SECRET)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
