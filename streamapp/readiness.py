"""What a process waits for before it says it is ready (GET /ready) and before it accepts events.

Ready means able to do its job:
- every topic it declares exists with STREAMAPP_TOPIC_PARTITIONS partitions (a
  worker also checks its tables' changelogs);
- a worker has joined its group, received an assignment and recovered its tables;
- an ingest process has its producer connected;
- the broker answers, and a worker's PostgreSQL answers (an ingest process
  without its database stays in service, "degraded": its webhooks only need the broker).

A write to a topic is let through (`Readiness.require_topic`, called by
`ingest.publish_all`) once that topic exists with the configured partitions:
writing to a missing topic is what made the broker auto-create
`licenses.inbound` with its own default partition count (issue 14). Until
then a webhook is answered 503 `not_ready` with Retry-After, after its
authentication and validation (bad input gets its 4xx at any time). A worker
still recovering its tables can accept: the events wait in their topic.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from faust.exceptions import NotReady

from streamapp.compat import broker_partition_counts, tables_recovered
from streamapp.errors import DependencyUnavailable

if TYPE_CHECKING:
    from streamapp.app import StreamApp

# What a refused webhook is told: topics appear within seconds of a worker's start.
RETRY_AFTER_SECONDS = 2
# At most one metadata request per this many seconds while the topics are not there yet.
RECHECK_INTERVAL = 0.5


class TopicNotReady(DependencyUnavailable):
    """A topic to write to does not exist yet (or has another partition count): retry later."""

    reason = "not_ready"
    retry_after = RETRY_AFTER_SECONDS


class Readiness:
    """One process's readiness, checked live; writes go to topics seen at the last check."""

    def __init__(self, app: StreamApp) -> None:
        self.app = app
        # Set once the process answered ready: later failures say "unavailable", not "starting".
        self.was_ready = False
        self._lock = asyncio.Lock()
        self._checked_at = 0.0
        self._topic_problems: list[str] = ["topics not checked yet"]
        # Topics seen on the broker with the configured partition count.
        self.writable: set[str] = set()

    def wanted_topics(self) -> list[str]:
        names = set(self.app.declared_topics)
        if self.app.role == "worker":
            names |= set(self.app.tables.changelog_topics)
        return sorted(names)

    async def check_topics(self) -> list[str]:
        """What is wrong with the topics ([] when every one exists with the configured count).

        Asked of the broker on every call (rate-limited), not remembered: the
        embedded broker forgets its topics when it restarts, and then writes must
        wait again until a worker has declared them.
        """
        await self._refresh()
        return self._topic_problems

    async def _refresh(self) -> None:
        """Ask the broker again, at most every RECHECK_INTERVAL (webhooks may ask on every request)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if loop.time() - self._checked_at < RECHECK_INTERVAL:
                return
            self._checked_at = loop.time()
            self._topic_problems = await self._topic_problems_now()

    async def _topic_problems_now(self) -> list[str]:
        wanted = self.app.settings.topic_partitions
        try:
            async with asyncio.timeout(5.0):
                counts = await broker_partition_counts(self.app)
        except NotReady:
            return ["the producer to start"]
        except (KafkaError, OSError, TimeoutError) as exc:
            return [f"the broker's topic metadata ({type(exc).__name__})"]
        # Replaced, not added to: a topic that vanished is refused again.
        self.writable = {name for name, count in counts.items() if count == wanted}
        missing = [name for name in self.wanted_topics() if name not in counts]
        problems = []
        if missing:
            # Created by a worker at its start, or by `streamapp topics --create`.
            problems.append("topics to be created: " + ", ".join(missing))
        for name in self.wanted_topics():
            if name in counts and counts[name] != wanted:
                problems.append(
                    f"topic {name} has {counts[name]} partitions, STREAMAPP_TOPIC_PARTITIONS is {wanted}"
                    " (align the setting or recreate the topic)"
                )
        return problems

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, JSON body) for GET /ready."""
        from streamapp.web.core import broker_reachable

        app = self.app
        broker_ok, db_ok, topic_problems = await asyncio.gather(
            broker_reachable(app.settings.kafka_url), app.db.ping(), self.check_topics()
        )
        waiting: list[str] = []
        checks: dict[str, bool] = {"broker": broker_ok, "database": db_ok, "topics": not topic_problems}
        if not broker_ok:
            waiting.append("the broker to answer")
        waiting += topic_problems
        if app.role == "worker":
            checks["tables_recovered"] = recovered = tables_recovered(app)
            if not recovered:
                waiting.append("the consumer group: join, partition assignment and table recovery")
            if not db_ok:
                waiting.append("PostgreSQL to answer")
        else:
            checks["producer"] = producer_ok = app.producer.started
            if not producer_ok:
                waiting.append("the producer to connect")
        ready = not waiting
        if ready:
            self.was_ready = True
            status = "ready" if db_ok else "degraded"
        else:
            status = "unavailable" if self.was_ready else "starting"
        return ready, {"status": status, "checks": checks, "waiting_for": waiting}

    async def require_topic(self, name: str) -> None:
        """Raise `TopicNotReady` unless `name` exists with the configured partition count.

        Checked against the broker (rate-limited) until the topic is seen; after
        that it costs a set lookup, until a check (GET /ready) misses it.
        """
        if name in self.writable:
            return
        await self._refresh()
        if name not in self.writable:
            raise TopicNotReady(
                f"starting: {name} is accepted once it exists with "
                f"{self.app.settings.topic_partitions} partitions; waiting for "
                + "; ".join(self._topic_problems or [f"{name} to be created"])
            )
