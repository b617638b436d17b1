"""The outbox relay: publishes committed cart changes to `carts.events` in order, then marks them sent.

One relay publishes at a time across all workers (a PostgreSQL advisory lock held
on the relay's own connection): with two, one cart's events could overtake each
other. The lock goes with the connection, so a dead worker's relay is replaced
within a poll interval. At least once: a crash between the broker's ack and the
UPDATE re-sends those rows; consumers recognise them by `event_id` / `version`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import asyncpg
from mode import Service

from streamapp.config.carts import CartsSettings
from streamapp.errors import DependencyUnavailable, describe
from streamapp.publishing import publish_all
from streamapp.retry import backoff_delays
from streamapp.typing import Topic

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every worker.
RELAY_LOCK = 0x4341_5254_5331  # "CARTS1"
CLEANUP_EVERY = 60.0

SELECT_UNSENT = """
SELECT id, cart_uuid, payload FROM cart_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1
"""
MARK_SENT = "UPDATE cart_outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
CLEANUP = "DELETE FROM cart_outbox WHERE sent_at < now() - make_interval(secs => $1)"


class OutboxRelay(Service):
    def __init__(self, app: Host, topic: Topic, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self.topic = topic
        self._wakeup = asyncio.Event()
        self.leader = False
        self.published = 0

    def poke(self) -> None:
        """A local transaction committed outbox rows: look now, not at the next poll."""
        self._wakeup.set()

    async def on_start(self) -> None:
        self.add_future(self._run())

    async def _run(self) -> None:
        settings = self.app.settings.of(CartsSettings)
        delays = backoff_delays(settings.retry_initial_backoff, settings.retry_max_backoff)
        while not self.should_stop:
            try:
                # The app's producer starts after us (dependency order): wait for it.
                while not self.app.producer.started:
                    await asyncio.sleep(0.1)
                conn = await asyncpg.connect(settings.postgres_dsn, timeout=10)
                try:
                    await self._lead(conn)
                finally:
                    self.leader = False
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
                delays = backoff_delays(settings.retry_initial_backoff, settings.retry_max_backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = next(delays)
                log.warning("carts outbox relay: %s; again in %.1fs", describe(exc), delay)
                await asyncio.sleep(delay)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        settings = self.app.settings.of(CartsSettings)
        while not self.should_stop and not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
            # Standby: another worker relays. Try again now and then.
            await asyncio.sleep(max(1.0, settings.carts_outbox_poll_interval))
        self.leader = True
        log.info("carts outbox relay: this worker publishes carts.events")
        loop = asyncio.get_running_loop()
        next_cleanup = loop.time()
        delays = backoff_delays(settings.retry_initial_backoff, settings.retry_max_backoff)
        while not self.should_stop:
            self._wakeup.clear()
            try:
                sent = await self.relay_batch(conn)
                delays = backoff_delays(settings.retry_initial_backoff, settings.retry_max_backoff)
            except DependencyUnavailable as exc:
                # The broker did not acknowledge: keep the lock, keep the rows, try again.
                # (PostgreSQL errors end the connection and the lock: `_run` starts over.)
                delay = next(delays)
                log.warning("carts outbox relay: %s; again in %.1fs", describe(exc), delay)
                await asyncio.sleep(delay)
                continue
            if loop.time() >= next_cleanup:
                await conn.execute(CLEANUP, settings.carts_outbox_retention)
                next_cleanup = loop.time() + CLEANUP_EVERY
            if sent < settings.carts_outbox_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), settings.carts_outbox_poll_interval)

    async def relay_batch(self, conn: asyncpg.Connection) -> int:
        settings = self.app.settings.of(CartsSettings)
        rows = await conn.fetch(SELECT_UNSENT, settings.carts_outbox_batch)
        if not rows:
            return 0
        messages = [(str(row["cart_uuid"]).encode(), bytes(row["payload"])) for row in rows]
        # In id order, and only then marked: a row is never marked before the broker has it.
        await publish_all(self.topic, messages, timeout=settings.ingest_ack_timeout)
        await conn.execute(MARK_SENT, [row["id"] for row in rows])
        self.published += len(rows)
        return len(rows)
