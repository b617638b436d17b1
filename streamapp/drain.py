"""The orderly stop of `streamapp dev`: stop accepting, work off what the topics hold, then stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from aiohttp.typedefs import Middleware

from streamapp.compat import ConsumerInternals, record_changelog_positions
from streamapp.console import terminal
from streamapp.gaps import acked_assignment

if TYPE_CHECKING:
    from streamapp.app import StreamApp

# What a refused webhook is told: the next worker (or this one, restarted) takes it.
RETRY_AFTER_SECONDS = 5
Handler = Callable[[aioweb.Request], Any]


def refuse_while_draining(app: StreamApp) -> Middleware:
    """503 + Retry-After on the routes that accept events, once the worker drains.

    Whatever is accepted must be processed before the broker stops (the embedded
    broker forgets its topics), so a draining worker takes nothing new; reads,
    probes and table routes keep working while it works off the backlog.
    """

    @aioweb.middleware
    async def guard(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        if app.draining and request.method != "GET":
            resource = request.match_info.route.resource
            if resource is not None and resource.canonical in app.ingest_paths:
                return aioweb.json_response(
                    {"error": "draining", "detail": "the worker is stopping; retry later"},
                    status=503,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
        response: aioweb.StreamResponse = await handler(request)
        return response

    return guard


async def backlog(app: Any) -> int | None:
    """Events in this worker's acked topics not processed and committed yet; None before it joined.

    A worker answers webhooks before its consumer group has given it partitions
    (Tansu answers a JoinGroup only after half the session timeout): with nothing
    assigned yet the backlog is unknown, not zero.
    """
    consumer = app.consumer
    assigned = acked_assignment(app)
    if not assigned:
        return None
    # Checked by a fetch (compat.use_fetched_end_offsets) unless STREAMAPP_BROKER_CHECK_END_OFFSETS is off.
    ends = await consumer.highwaters(*assigned)
    committed = dict(ConsumerInternals(consumer).committed())
    return sum(max(0, (ends.get(tp) or 0) - (committed.get(tp) or 0)) for tp in assigned)


_began: float | None = None


def say(line: str) -> None:
    """Progress for the person at the terminal (stderr: stdout may be piped to a log).

    Each line says how long the stop has taken so far: where a slow stop spends its time.
    """
    global _began
    now = time.monotonic()
    if _began is None:
        _began = now
    print(f"streamapp dev [{now - _began:4.1f}s]: {line}", file=terminal(), flush=True)


async def stop_process(proc: subprocess.Popen[str], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


class Drain:
    """Runs the stop in order on the first SIGINT/SIGTERM; a second one stops at once.

    Order: simulator and ingest processes (they accept webhooks), then this
    worker's own webhook routes (503 + Retry-After), then the agents work off the
    backlog (bounded by `timeout`), a commit, and the worker stops. `streamapp dev`
    then stops the broker and PostgreSQL last.
    """

    def __init__(
        self,
        app: StreamApp,
        senders: Sequence[subprocess.Popen[str]],
        timeout: float,
        stop_worker: Callable[[], None],
        record_positions: bool = False,
    ) -> None:
        self.app = app
        self.senders = list(senders)
        self.timeout = timeout
        self.stop_worker = stop_worker
        # After a complete drain, record in the local stores how far their changelogs go.
        self.record_positions = record_positions
        self.task: asyncio.Task[None] | None = None
        self.forced = False
        self.left = 0
        # True once the backlog was counted and found empty: only then is every
        # changelog record of the worker's partitions in its local store.
        self.drained = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal)

    def on_signal(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self.run())
            return
        if self.forced:
            return
        self.forced = True
        say(
            "stopping now: "
            + (
                f"about {self.left} accepted events not processed yet are lost with the embedded "
                "broker's memory (a real broker keeps them for the next start)"
                if self.left
                else "accepted events not processed yet, if any, are lost with the embedded broker's "
                "memory (the backlog had not been counted yet)"
            )
        )
        self.task.cancel()
        for proc in self.senders:
            if proc.poll() is None:
                proc.kill()
        self.stop_worker()

    async def run(self) -> None:
        say("stopping: ingest first (Ctrl-C again to stop at once)")
        try:
            await asyncio.gather(*(stop_process(proc, 10.0) for proc in self.senders))
            self.app.draining = True
            try:
                await self.work_off_backlog()
            except Exception as exc:  # never leave `dev` hanging: stop without the drain
                say(f"cannot drain ({exc!r}); stopping")
            with contextlib.suppress(Exception):
                await self.app.consumer.commit()
            if self.drained and self.record_positions:
                try:
                    await record_changelog_positions(self.app)
                except Exception as exc:  # costs the next start a longer recovery, nothing else
                    say(f"could not record the changelog positions ({exc!r})")
        except asyncio.CancelledError:
            return
        self.stop_worker()

    async def work_off_backlog(self) -> None:
        began = time.monotonic()
        deadline = began + self.timeout
        shown = 0.0
        while True:
            try:
                left = await backlog(self.app)
            except Exception as exc:  # the broker went away: nothing more to drain from it
                say(f"cannot read the backlog ({exc!r}); stopping")
                return
            now = time.monotonic()
            if left is not None:
                self.left = left
            if left == 0:
                self.drained = True
                say(f"backlog processed in {now - began:.1f}s; stopping the worker")
                return
            if now >= deadline:
                say(
                    f"{self.left if left is not None else 'an unknown number of'} events still "
                    f"unprocessed after {self.timeout:.0f}s (STREAMAPP_DRAIN_TIMEOUT); stopping anyway"
                )
                return
            if now - shown >= 1.0:
                say(
                    f"draining: {self.left} events left to process ({deadline - now:.0f}s left)"
                    if left is not None
                    else f"draining: waiting for the worker to join its group ({deadline - now:.0f}s left)"
                )
                shown = now
            # Commit what is done, so the committed offsets (what the backlog counts from) move.
            with contextlib.suppress(Exception):
                await self.app.consumer.commit()
            await asyncio.sleep(0.25)
