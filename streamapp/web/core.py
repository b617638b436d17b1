"""Core views every deployment has: liveness, readiness, consumer lag and table inspection."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Literal, cast

from aiokafka.errors import KafkaError
from faust.exceptions import NotReady
from faust.types import TableT
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable
from pydantic import BaseModel, Field

from streamapp.auth import require_admin
from streamapp.compat import ConsumerInternals, learn_topic_partitions
from streamapp.errors import DependencyUnavailable, NotFound, describe
from streamapp.gaps import acked_assignment
from streamapp.lag import partition_lags
from streamapp.routes import ADMIN, PUBLIC, Operation, Reply
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView

if TYPE_CHECKING:
    from streamapp.host import CoreHost


async def consumer_lag(app: CoreHost) -> list[dict[str, Any]]:
    """`partition_lags` of the partitions this worker holds, end offsets asked of the broker now."""
    consumer: Any = app.consumer
    try:
        assigned = acked_assignment(app)
        ends = await consumer.highwaters(*assigned) if assigned else {}
    except Exception as exc:  # not started yet, or the broker does not answer
        raise DependencyUnavailable(f"consumer offsets unavailable: {exc!r}") from exc
    return partition_lags(assigned, ConsumerInternals(consumer).committed(), ends)


def jsonable(value: Any) -> Any:
    """Table values are JSON-able by construction; bytes keys/values are shown as text."""
    if isinstance(value, bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value.decode(errors="replace")
    return value


class HealthReply(BaseModel):
    status: Literal["ok"]


class ReadinessReply(BaseModel):
    status: Literal["ready", "degraded", "starting", "unavailable"] = Field(
        description="`starting` until ready once, `unavailable` when no longer ready (streamapp/readiness.py)"
    )
    checks: dict[str, bool] = Field(
        description="broker, database, topics; a worker's tables_recovered, an ingest process's producer"
    )
    waiting_for: list[str] = Field(description="What it waits for, for people; empty when ready")


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int | None
    end: int | None
    lag: int | None


class LagReply(BaseModel):
    total: int
    topics: dict[str, int]
    partitions: list[PartitionLag]


class TableInfo(BaseModel):
    name: str
    changelog_topic: str
    local_partitions: list[int]
    local_keys: int


class TablesReply(BaseModel):
    tables: list[TableInfo]


class TableValue(BaseModel):
    table: str
    key: str
    value: Any


class Health(JsonView):
    """Liveness: the process answers."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


class Ready(JsonView):
    """Readiness: 200 only when this process can do its job (streamapp/readiness.py).

    503 otherwise, with `waiting_for` saying what it waits for. An ingest
    process without PostgreSQL stays in service, "degraded": its webhooks
    need only the broker, so a database outage does not turn into refused
    webhooks at the load balancer.
    """

    async def get(self, request: Request) -> Response:
        ready, body = await self.core.readiness.report()
        return self.reply(ReadinessReply, body, status=200 if ready else 503)


class Lag(JsonView):
    """How far this worker's agents are behind, per topic and partition it holds (admin).

    Workers yield the CPU to the ingest tier (STREAMAPP_WORKER_NICE), so under
    a burst the lag grows on purpose; it must come back down after. Each worker
    reports its own partitions: sum them for a topic's total.
    """

    async def get(self, request: Request) -> Response:
        require_admin(self.core, aiohttp_request(request))
        rows = await consumer_lag(self.core)
        topics: dict[str, int] = {}
        for row in rows:
            topics[row["topic"]] = topics.get(row["topic"], 0) + (row["lag"] or 0)
        return self.json({"total": sum(topics.values()), "topics": topics, "partitions": rows})


class Tables(JsonView):
    """Lists the tables and the partitions this worker holds for each (admin)."""

    async def get(self, request: Request) -> Response:
        require_admin(self.core, aiohttp_request(request))
        assigned = self.core.assignor.assigned_actives() if self.core.assignor else set()
        return self.json(
            {
                "tables": [
                    {
                        "name": name,
                        "changelog_topic": table.changelog_topic.get_topic_name(),
                        "local_partitions": sorted(
                            tp.partition
                            for tp in assigned
                            if tp.topic == table.changelog_topic.get_topic_name()
                        ),
                        "local_keys": len(table),
                    }
                    for name, table in sorted(self.core.tables.items())
                ]
            }
        )


class TableKey(JsonView):
    """One key's value, answered by the worker that owns the key's partition (admin).

    Admin only: a table holds other callers' data (cart totals of every user);
    each pipeline's own read routes apply its rules.
    """

    async def get(self, request: Request, table: str, key: str) -> Response:
        require_admin(self.core, aiohttp_request(request))
        try:
            collection = cast("TableT[Any, Any]", self.core.tables[table])
        except KeyError as exc:
            raise NotFound(f"no table named {table!r}") from exc

        # Raw-keyed tables (keys co-partitioned with a source topic) hold bytes.
        raw_keys = getattr(collection, "key_serializer", None) == "raw"
        lookup: Any = key.encode() if raw_keys else key

        async def local(view: View, req: Request) -> Response:
            if lookup not in collection:
                raise NotFound(f"no key {key!r} in table {table!r}")
            return self.json({"table": table, "key": key, "value": jsonable(collection[lookup])})

        changelog = collection.changelog_topic.get_topic_name()
        try:
            async with asyncio.timeout(self.core.settings.ingest_ack_timeout):
                await learn_topic_partitions(self.core, changelog)
            routed = self.core.table_route(collection, match_info="key")(local)
            response: Response = await routed(self, request)
        except (ServiceUnavailable, NotReady, TimeoutError, KafkaError) as exc:
            # Partitions not assigned yet (a rebalance), the producer not started,
            # or the broker does not answer: try again later.
            raise DependencyUnavailable(f"cannot route key of table {table!r} now: {describe(exc)}") from exc
        return response


def register_core_views(app: CoreHost) -> None:
    app.route(
        "/health",
        tag="core",
        ingest=True,
        get=Operation("Liveness: the process answers", PUBLIC, {200: Reply("Alive", HealthReply)}),
    )(Health)
    app.route(
        "/ready",
        tag="core",
        ingest=True,
        get=Operation(
            "Readiness: this process can do its job",
            PUBLIC,
            {
                200: Reply("Ready (or degraded: an ingest process without its database)", ReadinessReply),
                503: Reply(
                    "Not ready (starting or unavailable); `waiting_for` says what for", ReadinessReply
                ),
            },
        ),
    )(Ready)
    app.route(
        "/lag",
        tag="core",
        get=Operation(
            "Consumer lag of this worker's partitions",
            ADMIN,
            {200: Reply("Lag per topic and partition", LagReply)},
            errors=(DependencyUnavailable,),
        ),
    )(Lag)
    app.route(
        "/tables/",
        tag="core",
        get=Operation(
            "Tables and this worker's partitions of each", ADMIN, {200: Reply("Tables", TablesReply)}
        ),
    )(Tables)
    app.route(
        "/tables/{table}/{key}",
        tag="core",
        get=Operation(
            "One key of a table, from the worker that owns it",
            ADMIN,
            {200: Reply("The key's value", TableValue)},
            errors=(NotFound, DependencyUnavailable),
        ),
    )(TableKey)
