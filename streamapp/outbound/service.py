"""The `DeliveryService`: claims due deliveries from PostgreSQL and attempts them concurrently."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from mode import Service

from streamapp.errors import describe
from streamapp.outbound import store
from streamapp.outbound.http import post_signed
from streamapp.outbound.models import DELIVERY_TOPIC, AttemptResult
from streamapp.outbound.schedule import next_delay
from streamapp.outbound.ssrf import BlockedDestination, GuardedConnector, parse_networks

if TYPE_CHECKING:
    from streamapp.app import StreamApp

log = logging.getLogger(__name__)


class DeliveryService(Service):
    """Owns the HTTP session and runs the scheduler loop.

    Retries are rows in PostgreSQL (`next_attempt_at`), so they survive restarts.
    Every attempt runs in its own task, limited per endpoint and overall, so one
    slow or dead endpoint only ever holds its own slots.
    """

    def __init__(self, app: StreamApp, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        settings = app.settings
        self._schedule = list(settings.delivery_schedule)
        self._allow = parse_networks(settings.delivery_allowed)
        self._session: aiohttp.ClientSession | None = None
        self._wakeup = asyncio.Event()
        self._global = asyncio.Semaphore(settings.delivery_concurrency)
        self._per_endpoint: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.delivery_per_endpoint)
        )
        self._inflight: set[asyncio.Task[None]] = set()
        self._rng = random.Random()

    async def on_start(self) -> None:
        self._session = aiohttp.ClientSession(connector=GuardedConnector(self._allow, limit=0))
        self.add_future(self._scheduler())

    async def on_stop(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def poke(self) -> None:
        """New deliveries were enqueued: look for due work now rather than at the next tick."""
        self._wakeup.set()

    async def _scheduler(self) -> None:
        interval = self.app.settings.delivery_poll_interval
        while not self.should_stop:
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
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)

    async def _deliver(self, item: store.Claimed) -> None:
        try:
            async with self._per_endpoint[item.endpoint_id], self._global:
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

    async def _attempt(self, item: store.Claimed) -> None:
        settings = self.app.settings
        if item.url is None or item.secret is None or item.disabled:
            reason = "endpoint_unknown" if item.url is None else "endpoint_disabled"
            async with self.app.db.pool.acquire() as conn:
                await store.set_status(conn, item.delivery_id, "disabled", reason)
            await self._dead_letter(item, reason, f"endpoint {item.endpoint_id!r}: {reason}")
            return
        attempted_at = datetime.now(UTC)
        assert self._session is not None
        try:
            result = await post_signed(
                self._session,
                item.url,
                item.secret,
                item.delivery_id,
                item.payload,
                timeout=settings.delivery_timeout,
                max_response_bytes=settings.delivery_max_response_bytes,
            )
        except BlockedDestination as exc:
            result = AttemptResult(None, 0.0, exc.detail)
            await self._finish(item, attempted_at, result, "dead")
            await self._dead_letter(item, exc.reason, exc.detail)
            return
        if result.ok:
            await self._finish(item, attempted_at, result, "succeeded")
            return
        if result.gone:
            async with self.app.db.pool.acquire() as conn:
                await store.disable_endpoint(conn, item.endpoint_id, "HTTP 410 Gone")
            await self._finish(item, attempted_at, result, "disabled")
            await self._dead_letter(item, "endpoint_gone", "the receiver answered 410 Gone")
            return
        delay = next_delay(self._schedule, item.round_attempts + 1, result.retry_after, self._rng)
        if delay is None:
            await self._finish(item, attempted_at, result, "dead")
            await self._dead_letter(item, "delivery_exhausted", result.error or "failed")
            return
        await self._finish(item, attempted_at, result, "pending", attempted_at + timedelta(seconds=delay))
        log.info(
            "delivery %s attempt %d failed (%s); next in %.1fs",
            item.delivery_id,
            item.attempts + 1,
            result.error,
            delay,
            extra={"delivery_id": str(item.delivery_id)},
        )

    async def _finish(
        self,
        item: store.Claimed,
        attempted_at: datetime,
        result: AttemptResult,
        status: str,
        next_attempt_at: datetime | None = None,
    ) -> None:
        async with self.app.db.pool.acquire() as conn:
            await store.record_attempt(
                conn, item, attempted_at, result, status=status, next_attempt_at=next_attempt_at
            )
        if next_attempt_at is not None and next_attempt_at <= datetime.now(UTC) + timedelta(seconds=1):
            self.poke()

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
