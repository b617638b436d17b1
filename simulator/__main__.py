"""Drive all five systems against a running stack: Salesforce, TODO tasks, merchants, assistance, carts.

Each system sends at its own steady rate (events per minute), retrying while the
stack is down; a progress line on stderr says what was sent and how it was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

import aiohttp

from simulator import assistance
from simulator.carts import TOKEN_VARIABLE, Carts, Shopper
from simulator.merchants import MerchantClient, Receiver
from simulator.records import Population
from simulator.sending import Tally, post
from simulator.tasks import TaskScript, deliveries
from streamapp.processes import ignore_further_stop_signals

SYSTEMS = ("salesforce", "tasks", "merchants", "assistance", "carts")
# Lively by default: three events a second per system. `--calm` is the old simulator's pace.
DEFAULT_RATE = 180.0
CALM_RATE = 6.0
# Slack takes about one message a second per webhook, and half the requests go there:
# more would only grow the delivery backlog.
ASSISTANCE_MAX_RATE = 30.0
ORG = "00D000000000001AAA"
# How long requests in flight may take to finish once asked to stop, s.
STOP_GRACE = 2.0


def secret_headers(secret: str | None) -> dict[str, str]:
    return {"X-Webhook-Secret": secret} if secret else {}


# Set on SIGINT/SIGTERM: each system finishes the request it is sending, then stops.
stopping = asyncio.Event()


async def every(interval: float, step: Callable[[], Awaitable[None]], count: int) -> None:
    """Call `step` every `interval` seconds (0: back to back), `count` times (0: forever)."""
    done = 0
    next_at = time.monotonic()
    while (count == 0 or done < count) and not stopping.is_set():
        await step()
        done += 1
        if interval:
            next_at += interval
            # Never catch up in a burst after a stall (e.g. while the stack was down).
            next_at = max(next_at, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), next_at - time.monotonic())


class Simulation:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.ingest = (args.ingest or args.base).rstrip("/")
        self.worker = args.base.rstrip("/")
        self.tallies: dict[str, Tally] = {name: Tally(name) for name in args.systems}
        self.receiver = Receiver()
        self.started = time.monotonic()

    def interval(self, system: str) -> float:
        rate = self.args.rate
        if system == "assistance":
            rate = min(rate, ASSISTANCE_MAX_RATE) if rate > 0 else ASSISTANCE_MAX_RATE
        return 60.0 / rate if rate > 0 else 0.0

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            jobs = [getattr(self, f"run_{name}")(session) for name in self.args.systems]
            await asyncio.gather(*jobs)

    async def run_salesforce(self, session: aiohttp.ClientSession) -> None:
        population = Population(self.args.customers, self.args.seed, soap_every=2)
        tally = self.tallies["salesforce"]
        url = f"{self.ingest}/salesforce/webhook"
        headers = secret_headers(self.args.secret)

        async def step() -> None:
            customer = population.change()
            if customer.soap:
                body = customer.outbound_message(ORG, datetime.now(UTC))
                status, _ = await post(session, url, body, {**headers, "Content-Type": "text/xml"})
                tally.count(status, f"customer {customer.id} (SOAP)")
            else:
                body = json.dumps(customer.record()).encode()
                status, _ = await post(session, url, body, headers, no_content_type=True)
                tally.count(status, f"customer {customer.id}")

        await every(self.interval("salesforce"), step, self.args.count)

    async def run_tasks(self, session: aiohttp.ClientSession) -> None:
        script = TaskScript(users=self.args.users, seed=self.args.seed)
        tally = self.tallies["tasks"]
        url = f"{self.ingest}/tasks/webhook"
        headers = {"Content-Type": "application/json", **secret_headers(self.args.tasks_secret)}
        step_ms = max(1.0, self.interval("tasks") * 1000)
        pending: list[dict[str, object]] = []

        async def step() -> None:
            if not pending:
                # Five events at a time, shuffled and sometimes repeated: the sender's habits.
                window = [script.next_event(timedelta(milliseconds=step_ms)) for _ in range(5)]
                pending.extend(deliveries(window, self.rng))
            event = pending.pop(0)
            status, _ = await post(session, url, json.dumps(event).encode(), headers)
            metadata = event["metadata"]
            assert isinstance(metadata, dict)
            tally.count(status, f"{event['event']} {metadata['id']} of {metadata['userId']}")

        await every(self.interval("tasks"), step, self.args.count)

    async def run_merchants(self, session: aiohttp.ClientSession) -> None:
        client = MerchantClient(self.worker, self.ingest, self.rng, self.args.admin_token)
        client.tally = self.tallies["merchants"]
        await self.receiver.start()
        await client.register(session, self.receiver)
        await every(self.interval("merchants"), lambda: client.send(session), self.args.count)

    async def run_assistance(self, session: aiohttp.ClientSession) -> None:
        tally = self.tallies["assistance"]
        await every(
            self.interval("assistance"),
            lambda: assistance.ask(session, self.ingest, self.rng, tally, self.args.bot_token),
            self.args.count,
        )

    async def run_carts(self, session: aiohttp.ClientSession) -> None:
        tally = self.tallies["carts"]
        if not self.args.carts_token:
            tally.count("no-token", f"set {TOKEN_VARIABLE} (streamapp dev mints one)")
            return
        api = Carts(self.args.grpc, self.args.carts_token)
        shopper = Shopper(api, self.rng, tally=tally)
        try:
            await every(self.interval("carts"), shopper.step, self.args.count)
        finally:
            await api.close()

    def progress(self, short: bool = False) -> str:
        """`short`: one terminal line (counts, and how many answers were not a success)."""
        elapsed = time.monotonic() - self.started
        if short:
            signed = f" ({self.receiver.verified} signed back)"
            parts = [
                f"{name} {tally.sent}{signed if name == 'merchants' else ''}"
                for name, tally in self.tallies.items()
            ]
            failed = sum(
                n
                for tally in self.tallies.values()
                for code, n in tally.statuses.items()
                if not (code == "OK" or code.startswith("2"))
            )
            if failed:
                parts.append(f"not ok {failed}")
        else:
            parts = [tally.summary() for tally in self.tallies.values()]
        if "merchants" in self.tallies:
            if not short:
                parts.append(f"signed results {self.receiver.verified}")
            if self.receiver.refused:
                parts.append(f"BAD SIGNATURES {self.receiver.refused}")
        return f"simulator {elapsed:.0f}s: " + (", " if short else " | ").join(parts)


async def report(sim: Simulation, mode: str, out: TextIO, every_s: float) -> None:
    """`line`: one line rewritten in place (a terminal nobody else writes to); `lines`: a line each period."""
    while True:
        if mode == "line":
            out.write("\r\x1b[K" + sim.progress(short=True)[: terminal_width(out) - 1])
        else:
            out.write(sim.progress() + "\n")
        out.flush()
        await asyncio.sleep(every_s if mode == "lines" else 0.5)


def terminal_width(out: TextIO) -> int:
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    # A pseudo-terminal may not know its size (0): assume a wide one rather than cut to nothing.
    return columns if columns >= 40 else 200


async def run(args: argparse.Namespace) -> int:
    sim = Simulation(args)
    out = sys.stderr
    progress = (
        None
        if args.progress == "off"
        else asyncio.create_task(report(sim, args.progress, out, args.progress_every))
    )
    work = asyncio.create_task(sim.run())
    loop = asyncio.get_running_loop()
    # SIGTERM (from `streamapp dev` stopping us) ends the run like Ctrl-C: a final line, exit 0.
    # Requests in flight finish first (a request cut mid-body is noise in the server's log);
    # one still retrying against a stack that went away is cancelled after a moment.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    asked = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([work, asked], return_when=asyncio.FIRST_COMPLETED)
    asked.cancel()
    ignore_further_stop_signals(loop)
    if not work.done():
        done, _ = await asyncio.wait([work], timeout=STOP_GRACE)
        if not done:
            work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    if progress is not None:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
    await sim.receiver.stop()
    if args.progress == "line":
        out.write("\r\x1b[K")
    out.write(sim.progress() + "\n")
    out.flush()
    return 0


def rate(text: str) -> float:
    """Events per minute per system: `180`, `180/min` or `3/s`."""
    value, _, unit = text.partition("/")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 180, 180/min or 3/s") from None
    if number < 0 or unit not in ("", "min", "m", "s", "sec"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 180, 180/min or 3/s")
    return number * 60 if unit in ("s", "sec") else number


def systems(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SYSTEMS)}")
    return chosen


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options `streamapp dev --simulate` passes through as well."""
    parser.add_argument(
        "--rate",
        type=rate,
        default=None,
        help=f"events per minute per system, or N/s (default {DEFAULT_RATE:g}; 0: as fast as possible)",
    )
    parser.add_argument(
        "--calm", action="store_true", help=f"the old simulator's pace: {CALM_RATE:g} per minute per system"
    )
    parser.add_argument(
        "--systems",
        type=systems,
        default=None,
        help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    add_options(parser)
    parser.add_argument("--base", default="http://127.0.0.1:6066", help="the worker's web address")
    parser.add_argument("--ingest", default=None, help="where webhooks go (the ingest tier; default: --base)")
    parser.add_argument("--grpc", default="127.0.0.1:9111", help="the carts gRPC address")
    parser.add_argument("--count", type=int, default=0, help="stop each system after this many (0: never)")
    parser.add_argument("--customers", type=int, default=10, help="size of the customer population")
    parser.add_argument("--users", type=int, default=5, help="TODO-app users")
    parser.add_argument(
        "--progress",
        choices=["line", "lines", "off"],
        default=None,
        help="line: one line rewritten in place (default on a terminal); lines: a line every "
        "--progress-every seconds (default otherwise); off",
    )
    parser.add_argument("--progress-every", type=float, default=10.0, help=argparse.SUPPRESS)
    env = os.environ.get
    parser.set_defaults(
        secret=env("STREAMAPP_SALESFORCE_SECRET") or None,
        tasks_secret=env("STREAMAPP_TASKS_SECRET") or None,
        admin_token=env("STREAMAPP_ADMIN_TOKEN") or None,
        bot_token=env("STREAMAPP_ASSISTANCE_BOT_TOKEN") or None,
        carts_token=env(TOKEN_VARIABLE) or None,
    )
    parser.epilog = (
        "Credentials come from the environment, as the stack reads them: STREAMAPP_SALESFORCE_SECRET, "
        "STREAMAPP_TASKS_SECRET, STREAMAPP_ADMIN_TOKEN (registers the merchant client), "
        f"STREAMAPP_ASSISTANCE_BOT_TOKEN, {TOKEN_VARIABLE} (carts; `streamapp dev` sets it)."
    )
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.rate is None:
        args.rate = CALM_RATE if args.calm else DEFAULT_RATE
    args.systems = args.systems or list(SYSTEMS)
    if args.progress is None:
        args.progress = "line" if sys.stderr.isatty() else "lines"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
