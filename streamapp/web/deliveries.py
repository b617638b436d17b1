"""Deliveries: every attempt of every delivery about a subject (e.g. a request id), and the newest of all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from faust.web import Request, Response
from pydantic import BaseModel, Field

from streamapp.auth import Kind, Principal, authenticate
from streamapp.errors import DependencyUnavailable, NotFound
from streamapp.outbound import store
from streamapp.routes import ANY_PRINCIPAL, DASHBOARD_ADMIN, Operation, Reply
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView, db_call, parse_query
from streamapp.web.paging import PageQuery, decode_time_cursor, encode_cursor
from streamapp.web.replies import IsoTime
from streamapp.web.session import require_dashboard_admin

if TYPE_CHECKING:
    from streamapp.host import Host


class Delivery(BaseModel):
    delivery_id: str
    pipeline: str
    owner: str
    endpoint_id: str
    channel: str | None
    status: str
    attempt_count: int
    next_attempt_at: IsoTime | None
    last_error: str | None
    created_at: IsoTime
    updated_at: IsoTime
    attempts: list[dict[str, Any]]


class DeliveriesReply(BaseModel):
    subject_id: str
    deliveries: list[Delivery]


DeliveryStatus = Literal["pending", "delivering", "succeeded", "dead", "disabled"]


class RecentQuery(PageQuery):
    status: DeliveryStatus | None = Field(default=None, description="Only these")


class RecentDelivery(Delivery):
    subject_id: str
    attempts: list[dict[str, Any]] = Field(description="The last five attempts at most, oldest first")


class RecentDeliveries(BaseModel):
    deliveries: list[RecentDelivery] = Field(description="Newest first")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last")


def may_read(principal: Principal, owner_kinds: Mapping[str, Kind], delivery: Mapping[str, Any]) -> bool:
    """The owner's id *and* kind must match: a merchant client named like the bot is not the bot.

    The kind comes from the pipeline that made the delivery; a pipeline that names
    none has deliveries only the admin reads.
    """
    if principal.admin:
        return True
    kind = owner_kinds.get(str(delivery["pipeline"]))
    return kind is not None and principal.may_read(kind, str(delivery["owner"]))


class Deliveries(JsonView):
    """Attempts (time, status, latency, error) per delivery; only its owner (or admin) sees it."""

    async def get(self, request: Request, subject_id: str) -> Response:
        principal = await authenticate(self.host, aiohttp_request(request))

        async def fetch() -> list[dict[str, object]]:
            async with self.host.db.pool.acquire() as conn:
                return await store.history(conn, subject_id)

        deliveries = [
            d for d in await db_call(fetch) if may_read(principal, self.host.delivery_owner_kinds, d)
        ]
        if not deliveries:
            # Someone else's subject looks exactly like an unknown one.
            raise NotFound(f"no deliveries for {subject_id!r}")
        return self.reply(DeliveriesReply, {"subject_id": subject_id, "deliveries": deliveries})


class Recent(JsonView):
    """What the dashboard shows of the outbound side: newest first, no count (it would scan)."""

    async def get(self, request: Request) -> Response:
        require_dashboard_admin(self.host, aiohttp_request(request))
        query = parse_query(request, RecentQuery)
        after = decode_time_cursor(query.after) if query.after else None

        async def fetch() -> tuple[list[dict[str, Any]], bool]:
            async with self.host.db.pool.acquire() as conn:
                return await store.recent(conn, query.limit, after, query.status)

        rows, more = await db_call(fetch)
        cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["delivery_id"]) if more and rows else None
        return self.reply(RecentDeliveries, {"deliveries": rows, "next": cursor})


def register_delivery_views(app: Host) -> None:
    app.route(
        "/deliveries/{subject_id}",
        tag="deliveries",
        get=Operation(
            "Every delivery about a subject (a request id), with each attempt",
            ANY_PRINCIPAL,
            {200: Reply("The deliveries the caller owns", DeliveriesReply)},
            errors=(NotFound, DependencyUnavailable),
        ),
    )(Deliveries)
    app.route(
        "/deliveries",
        tag="deliveries",
        get=Operation(
            "The newest deliveries of every pipeline, with their last attempts, a page at a time",
            DASHBOARD_ADMIN,
            {
                200: Reply(
                    "A page of deliveries (never an endpoint's settings: they hold secrets)", RecentDeliveries
                )
            },
            query=RecentQuery,
            errors=(DependencyUnavailable,),
        ),
    )(Recent)
