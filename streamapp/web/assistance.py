"""Assistance views: the chat bot's requests, their delivery status, and the routing admin endpoints."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web as aioweb
from faust.web import Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from streamapp.auth import (
    Authenticator,
    Principal,
    authenticate,
    bearer,
    dev_open,
    require_admin,
    token_matches,
)
from streamapp.config.assistance import AssistanceSettings
from streamapp.envelope import derived_id, utcnow
from streamapp.errors import DependencyUnavailable, NotFound, StreamappError, Unauthorized, ValidationFailed
from streamapp.models.assistance import BOT_OWNER, AssistanceIn, AssistanceRequest
from streamapp.outbound import store
from streamapp.outbound.service import DELIVERY_SERVICE
from streamapp.readiness import TopicNotReady
from streamapp.routes import ADMIN, BOT, BOT_OR_ADMIN, Operation, Reply, idempotency_key
from streamapp.rules.assistance import RoutingError, channel_report
from streamapp.services.assistance import RoutingUnavailable
from streamapp.stores.assistance import assistance_request
from streamapp.typing import Topic, aiohttp_request
from streamapp.web.base import JsonView, bound, db_call, parse_json_object, validation_errors
from streamapp.web.replies import IsoTime
from streamapp.web.webhook import Accepted, Webhook

if TYPE_CHECKING:
    from streamapp.host import Host
    from streamapp.services.assistance import Routing

MAX_IDEMPOTENCY_KEY = 255
BOT_PRINCIPAL = Principal("bot", BOT_OWNER)


class UnknownTopic(StreamappError):
    status = 422
    reason = "unknown_topic"

    def __init__(self, topic: str, known: list[str]) -> None:
        super().__init__(
            f"no route for topic {topic.strip()!r}; known topics: {', '.join(known)}",
            errors=[{"field": "topic", "type": "unknown_topic", "message": "not a known topic"}],
        )
        self.known = known

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "known_topics": self.known}


class AssistanceAccepted(BaseModel):
    request_id: str
    status: Literal["accepted"]
    topic: str
    channels: list[str]


class AssistanceStatusReply(BaseModel):
    request_id: str
    topic: str
    topic_as_sent: str
    description: str
    customer: dict[str, Any] | None
    conversation_url: str | None
    language: str | None
    received_at: IsoTime
    routing_version: str | None
    status: Literal["delivered", "in_progress", "partially_delivered", "failed"]
    channels: list[dict[str, Any]]


class RoutingReply(BaseModel):
    active: dict[str, Any] | None
    loaded_at: IsoTime | None
    source: str | None
    last_error: dict[str, Any] | None
    channel_types: list[str]


class ReloadReply(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["reloaded"]


class RoutingRejected(BaseModel):
    """422: the file was not taken (the table in force stays); every problem is named."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str
    active_version: str | None


def bot_authenticator(app: Host) -> Authenticator:
    """The bot's bearer token makes it the bot, owner of assistance deliveries (also for /deliveries/...)."""

    async def authenticate_bot(request: aioweb.Request) -> Principal | None:
        return (
            BOT_PRINCIPAL
            if token_matches(request, app.settings.of(AssistanceSettings).assistance_bot_token)
            else None
        )

    return authenticate_bot


async def bot_principal(app: Host, request: aioweb.Request) -> Principal:
    if dev_open(app, app.settings.of(AssistanceSettings).assistance_bot_token) and bearer(request) is None:
        return BOT_PRINCIPAL
    return await authenticate(app, request)


class Assistance(Webhook):
    """Accept a request for help: 202 with its id once it is durable in the topic."""

    routing: Routing
    settings: AssistanceSettings

    async def authorize(self, request: Request) -> None:
        principal = await bot_principal(self.host, aiohttp_request(request))
        if principal != BOT_PRINCIPAL:
            raise Unauthorized("the chat bot's token is required")

    async def accept(self, request: Request, body: bytes) -> Accepted:
        raw = aiohttp_request(request)
        data = parse_json_object(body)
        try:
            incoming = AssistanceIn.model_validate(
                data, context={"max_description": self.settings.assistance_max_description}
            )
        except ValidationError as exc:
            raise validation_errors(exc) from exc
        idempotency_key = raw.headers.get("Idempotency-Key")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValidationFailed(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        table = await self.routing.current()
        resolved = table.resolve(incoming.topic)
        if resolved is None:
            raise UnknownTopic(incoming.topic, table.known_topics)
        topic, channels = resolved
        # A retried POST with the same key is the same request: same id, nothing sent twice.
        request_id = derived_id("assistance.request", idempotency_key) if idempotency_key else uuid.uuid4()
        event = AssistanceRequest(
            request_id=request_id,
            received_at=utcnow(),
            topic=topic,
            topic_as_sent=incoming.topic,
            description=incoming.description,
            customer=incoming.customer,
            conversation_url=incoming.conversation_url,
            language=incoming.language,
            channels=tuple(channel.name for channel in channels),
            routing_version=table.version,
        )
        return Accepted(
            [(str(request_id).encode(), event.model_dump_json().encode())],
            {
                "request_id": str(request_id),
                "status": "accepted",
                "topic": topic,
                "channels": list(event.channels),
            },
            reply=AssistanceAccepted,
        )


class AssistanceStatus(JsonView):
    """A request and the status of each channel it went to, with every attempt."""

    async def get(self, request: Request, request_id: str) -> Response:
        principal = await bot_principal(self.host, aiohttp_request(request))
        try:
            rid = uuid.UUID(request_id)
        except ValueError as exc:
            raise NotFound(f"no assistance request {request_id!r}") from exc
        if not principal.may_read("bot", BOT_OWNER):
            raise NotFound(f"no assistance request {request_id!r}")

        async def fetch() -> tuple[Any, list[dict[str, Any]]]:
            async with self.host.db.pool.acquire() as conn:
                row = await assistance_request(conn, rid)
                return row, await store.history(conn, str(rid))

        row, deliveries = await db_call(fetch)
        if row is None:
            # Not recorded yet (it is on its way through the topic) or unknown.
            raise NotFound(f"no assistance request {request_id!r} (yet)")
        return self.reply(
            AssistanceStatusReply,
            {
                "request_id": str(rid),
                "topic": row["topic"],
                "topic_as_sent": row["topic_as_sent"],
                "description": row["description"],
                "customer": json.loads(row["customer"]) if row["customer"] else None,
                "conversation_url": row["conversation_url"],
                "language": row["language"],
                "received_at": row["received_at"].isoformat(),
                "routing_version": row["routing_version"],
                **channel_report(tuple(row["channels"]), deliveries),
            },
        )


class RoutingView(JsonView):
    """The table in force (secrets masked), when it was loaded, and the last rejected reload."""

    routing: Routing

    async def get(self, request: Request) -> Response:
        require_admin(self.host, aiohttp_request(request))
        table = self.routing.table
        return self.reply(
            RoutingReply,
            {
                "active": table.describe() if table else None,
                "loaded_at": self.routing.loaded_at.isoformat() if self.routing.loaded_at else None,
                "source": self.routing.source,
                "last_error": self.routing.last_error.to_json() if self.routing.last_error else None,
                "channel_types": self.host.provided(DELIVERY_SERVICE).channel_kinds,
            },
        )


class RoutingReload(JsonView):
    """Re-read the routing file: 200 with what changed, or 422 naming every problem (table kept)."""

    routing: Routing

    async def post(self, request: Request) -> Response:
        require_admin(self.host, aiohttp_request(request))
        try:
            report = await self.routing.reload()
        except RoutingError as exc:
            kept = self.routing.table.version if self.routing.table else None
            return self.json({**exc.to_json(), "active_version": kept}, status=exc.status)
        return self.json(report.to_json())


def register_assistance_views(app: Host, requests_topic: Topic, routing: Routing) -> None:
    settings = app.settings.of(AssistanceSettings)
    app.route(
        "/assistance",
        tag="assistance",
        ingest=True,
        post=Operation(
            "A customer needs help: routed by topic to Slack or e-mail",
            BOT,
            {202: Reply("Accepted: durable in the topic", AssistanceAccepted)},
            body=AssistanceIn,
            headers=idempotency_key(MAX_IDEMPOTENCY_KEY, "request"),
            errors=(UnknownTopic, RoutingUnavailable, DependencyUnavailable, TopicNotReady),
        ),
    )(bound(Assistance, topic=requests_topic, routing=routing, settings=settings))
    app.route(
        "/assistance/{request_id}",
        tag="assistance",
        get=Operation(
            "A request and the status of each channel it went to",
            BOT_OR_ADMIN,
            {200: Reply("The request with every delivery attempt", AssistanceStatusReply)},
            errors=(NotFound, DependencyUnavailable),
        ),
    )(AssistanceStatus)
    app.route(
        "/admin/assistance/routing",
        tag="assistance",
        get=Operation(
            "The routing table in force (secrets masked)",
            ADMIN,
            {200: Reply("The table, when it was loaded, the last rejected reload", RoutingReply)},
        ),
    )(bound(RoutingView, routing=routing))
    app.route(
        "/admin/assistance/routing/reload",
        tag="assistance",
        post=Operation(
            "Re-read the routing file",
            ADMIN,
            {
                200: Reply("What changed", ReloadReply),
                422: Reply("Rejected: every problem named, the table in force kept", RoutingRejected),
            },
            errors=(DependencyUnavailable,),
        ),
    )(bound(RoutingReload, routing=routing))
