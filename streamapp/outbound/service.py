"""The `DeliveryService`: claims due deliveries from PostgreSQL and attempts them through their channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from mode import Service
from pydantic import ValidationError

from streamapp import metrics
from streamapp.errors import describe
from streamapp.host import Provision
from streamapp.outbound import store
from streamapp.outbound.channels import Channel, ChannelContext, channel_types
from streamapp.outbound.models import DELIVERY_TOPIC, AttemptResult, Verdict
from streamapp.outbound.schedule import next_delay
from streamapp.outbound.ssrf import BlockedDestination, GuardedConnector, parse_networks

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)

# A rate-limit slot this close is waited for in place; a later one puts the delivery back.
SLOT_WAIT_IN_PLACE = 0.25
# Timers wake the scheduler for work due sooner than this; the poll finds the rest.
WAKE_HORIZON = 30.0


# The deliveries pipeline provides its service to the others (assistance lists its channel kinds).
DELIVERY_SERVICE: Provision[DeliveryService] = Provision("deliveries.service")


class DeliveryService(Service):
    """Owns the HTTP session and the channels, and runs the scheduler loop.

    Retries are rows in PostgreSQL (`next_attempt_at`), so they survive restarts.
    Every attempt runs in its own task, limited per endpoint and overall, so one
    slow or dead endpoint only ever holds its own slots. Rate limits and
    Retry-After pauses live on the endpoint row, shared by all workers.
    """

    def __init__(self, app: Host, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        settings = app.settings
        self._schedule = list(settings.delivery_schedule)
        self._allow = parse_networks(settings.delivery_allowed)
        self._session: aiohttp.ClientSession | None = None
        self._types = channel_types()
        self._channels: dict[str, Channel[Any]] = {}
        self._wakeup = asyncio.Event()
        self._global = asyncio.Semaphore(settings.delivery_concurrency)
        self._per_endpoint: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.delivery_per_endpoint)
        )
        self._inflight: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._rng = random.Random()

    @property
    def channel_kinds(self) -> list[str]:
        return sorted(self._types)

    def channel_type(self, kind: str) -> type[Channel[Any]] | None:
        return self._types.get(kind)

    async def on_start(self) -> None:
        self._session = aiohttp.ClientSession(connector=GuardedConnector(self._allow, limit=0))
        settings = self.app.settings
        context = ChannelContext(
            session=self._session,
            timeout=settings.delivery_timeout,
            max_response_bytes=settings.delivery_max_response_bytes,
        )
        self._channels = {kind: cls(context) for kind, cls in self._types.items()}
        self.add_future(self._scheduler())

    async def on_stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def poke(self) -> None:
        """New deliveries were enqueued: look for due work now rather than at the next tick."""
        self._wakeup.set()

    def _wake_in(self, seconds: float) -> None:
        """Look again when a retry or a rate-limit slot comes due, not a poll interval later."""
        if seconds > WAKE_HORIZON:
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.poke()

        handle = loop.call_later(max(0.0, seconds), fire)
        self._timers.add(handle)

    async def _scheduler(self) -> None:
        interval = self.app.settings.delivery_poll_interval
        while not self.should_stop:
            self._wakeup.clear()
            try:
                free = self.app.settings.delivery_concurrency - len(self._inflight)
                if free > 0:
                    async with self.app.db.pool.acquire() as conn:
                        claimed = await store.claim_due(conn, free)
                    for item in claimed:
                        task = asyncio.create_task(self._deliver(item))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("delivery scheduler: %s", describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)

    async def _deliver(self, item: store.Claimed) -> None:
        try:
            async with self._per_endpoint[item.endpoint_id]:
                if not await self._take_slot(item):
                    return
                async with self._global:
                    await self._attempt(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The row stays claimed until its lease runs out, then it is tried again.
            log.exception(
                "delivery %s: unexpected error: %s",
                item.delivery_id,
                describe(exc),
                extra={"delivery_id": str(item.delivery_id)},
            )

    async def _take_slot(self, item: store.Claimed) -> bool:
        """Honour the endpoint's rate limit: send now (True) or put the delivery back until its slot."""
        if item.min_interval is None or item.has_slot or item.channel is None or item.disabled:
            return True
        async with self.app.db.pool.acquire() as conn:
            wait = await store.reserve_slot(conn, item.endpoint_id, item.min_interval)
            if wait > SLOT_WAIT_IN_PLACE:
                await store.defer(conn, item.delivery_id, wait)
                # A hair late rather than early: the slot is PostgreSQL's clock, the timer ours.
                self._wake_in(wait + 0.01)
                return False
        if wait > 0:
            await asyncio.sleep(wait)
        # The next delivery to this endpoint may go one interval from now.
        self._wake_in(item.min_interval)
        return True

    async def _attempt(self, item: store.Claimed) -> None:
        if item.channel is None or item.disabled:
            reason = "endpoint_unknown" if item.channel is None else "endpoint_disabled"
            await self._give_up(item, "disabled", reason, f"endpoint {item.endpoint_id!r}: {reason}")
            return
        channel = self._channels.get(item.channel)
        if channel is None:
            detail = (
                f"endpoint {item.endpoint_id!r} has channel type {item.channel!r}, which is not installed"
            )
            await self._give_up(item, "dead", "channel_unknown", detail)
            return
        try:
            config = channel.parse(item.config)
        except ValidationError as exc:
            # The error names fields, not values (include_input=False): settings hold secrets.
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            await self._give_up(
                item, "dead", "endpoint_invalid", f"endpoint {item.endpoint_id!r}: {problems}"
            )
            return
        target = channel.target(config)
        attempted_at = datetime.now(UTC)
        started = time.monotonic()
        try:
            result = await channel.send(item.delivery, config)
        except BlockedDestination as exc:
            result = AttemptResult(None, 0.0, exc.detail, verdict=Verdict.REJECTED)
            await self._finish(item, target, attempted_at, result, "dead")
            await self._dead_letter(item, exc.reason, exc.detail)
            return
        except Exception as exc:
            # A bug in a channel: recorded as a failed attempt and retried on the schedule,
            # so the delivery ends in the dead-letter topic (replayable) rather than stuck.
            log.exception("delivery %s: channel %s failed", item.delivery_id, item.channel)
            result = AttemptResult(None, (time.monotonic() - started) * 1000, describe(exc))
        if result.throttled and result.retry_after is not None:
            async with self.app.db.pool.acquire() as conn:
                await store.pause_endpoint(conn, item.endpoint_id, result.retry_after)
        outcome = result.outcome
        if outcome is Verdict.DELIVERED:
            await self._finish(item, target, attempted_at, result, "succeeded")
            return
        if outcome is Verdict.GONE:
            async with self.app.db.pool.acquire() as conn:
                await store.disable_endpoint(conn, item.endpoint_id, result.error or "gone")
            await self._finish(item, target, attempted_at, result, "disabled")
            await self._dead_letter(item, "endpoint_gone", f"the receiver said it is gone: {result.error}")
            return
        if outcome is Verdict.REJECTED:
            await self._finish(item, target, attempted_at, result, "dead")
            await self._dead_letter(item, "delivery_rejected", result.error or "rejected")
            return
        delay = next_delay(self._schedule, item.round_attempts + 1, result.retry_after, self._rng)
        if delay is None:
            await self._finish(item, target, attempted_at, result, "dead")
            await self._dead_letter(item, "delivery_exhausted", result.error or "failed")
            return
        await self._finish(
            item, target, attempted_at, result, "pending", attempted_at + timedelta(seconds=delay)
        )
        self._wake_in(delay)
        log.info(
            "delivery %s attempt %d via %s failed (%s); next in %.1fs",
            item.delivery_id,
            item.attempts + 1,
            item.channel,
            result.error,
            delay,
            extra={"delivery_id": str(item.delivery_id)},
        )

    async def _give_up(self, item: store.Claimed, status: str, reason: str, detail: str) -> None:
        """Nothing can be attempted: no attempt is recorded, the delivery is dead-lettered."""
        async with self.app.db.pool.acquire() as conn:
            await store.set_status(conn, item.delivery_id, status, reason)
        await self._dead_letter(item, reason, detail)

    async def _finish(
        self,
        item: store.Claimed,
        target: str,
        attempted_at: datetime,
        result: AttemptResult,
        status: str,
        next_attempt_at: datetime | None = None,
    ) -> None:
        async with self.app.db.pool.acquire() as conn:
            await store.record_attempt(
                conn,
                item,
                attempted_at,
                result,
                target=target,
                status=status,
                next_attempt_at=next_attempt_at,
            )
        metrics.count_delivery_attempt(item.channel, "retry" if status == "pending" else status)

    async def _dead_letter(self, item: store.Claimed, reason: str, detail: str) -> None:
        await self.app.dead_letters.send(
            pipeline=item.pipeline,
            reason=reason,
            detail=detail,
            topic=DELIVERY_TOPIC,
            key=item.endpoint_id.encode(),
            value=item.request,
            event_id=str(item.delivery_id),
        )
