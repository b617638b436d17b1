"""Merchants views: client registration, asynchronous normalization requests and polling."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web as aioweb
from faust.types import TableT
from faust.web import Request, Response
from pydantic import BaseModel, Field, ValidationError
from yarl import URL

from streamapp.auth import Principal, bearer, dev_open, hash_key, is_admin, same
from streamapp.config.merchants import MerchantsSettings
from streamapp.envelope import derived_id, utcnow
from streamapp.errors import (
    Conflict,
    DependencyUnavailable,
    IdempotencyKeyReused,
    MalformedBody,
    NotFound,
    StreamappError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from streamapp.models.merchants import (
    CLIENT_ID,
    ClientRecord,
    NormalizeRequest,
    Transaction,
    WebhookRegistration,
    description_key,
)
from streamapp.outbound import signing, store
from streamapp.outbound.ssrf import BlockedDestination, IPNetwork, check_address, parse_networks
from streamapp.publishing import publish_all
from streamapp.ratelimit import NegativeCache, TokenBuckets
from streamapp.readiness import TopicNotReady
from streamapp.routes import (
    ADMIN_OR_CLIENT_KEY,
    CLIENT,
    Operation,
    Reply,
    idempotency_key,
)
from streamapp.stores import merchants as merchants_store
from streamapp.typing import Topic, aiohttp_request
from streamapp.web.base import (
    JsonView,
    bound,
    db_call,
    load_json,
    parse_json_object,
    read_body,
    validation_errors,
)
from streamapp.web.merchants.requests import Merchant, register_client_request_views
from streamapp.web.webhook import Accepted, Webhook

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)
MAX_IDEMPOTENCY_KEY = 255
# The client a request to normalize came from, found before its body is read.
CLIENT_ID_KEY = aioweb.RequestKey("streamapp_merchant_client", str)


class ClientRegistered(BaseModel):
    client_id: str
    url: str
    signing_secret: str = Field(description="Verifies the signatures of the webhooks sent to `url`")


class ClientCreated(ClientRegistered):
    api_key: str = Field(description="Shown this once: keep it")


class RequestAccepted(BaseModel):
    request_id: str


class RequestStatus(BaseModel):
    request_id: str
    status: Literal["pending", "done", "failed"]
    merchant: Merchant | None


IDEMPOTENCY_KEY = idempotency_key(MAX_IDEMPOTENCY_KEY, "request")


def parse_transaction(body: bytes) -> Transaction:
    """JSON numbers are parsed as Decimal, so `12.99` stays exactly 12.99."""
    data = load_json(body, parse_float=Decimal)
    if not isinstance(data, dict):
        raise MalformedBody("body must be a JSON object")
    try:
        return Transaction.model_validate(data)
    except ValidationError as exc:
        raise validation_errors(exc) from exc


class Clients:
    """Client lookups for the hot path: the global table first, PostgreSQL when it has not caught up."""

    def __init__(self, app: Host, cache: TableT[bytes, Any], topic: Topic) -> None:
        self.app = app
        self.cache = cache
        self.topic = topic
        settings = app.settings.of(MerchantsSettings)
        # An unknown client-id would cost a PostgreSQL query each time: remember the
        # answer briefly (a client registered meanwhile waits at most this long).
        self.unknown = NegativeCache(settings.merchant_unknown_client_ttl)
        # One client flooding distinct descriptions must not take the heuristic pool
        # from everyone: its requests are refused (429) past its share, per process.
        self.limits = TokenBuckets(settings.merchant_client_rate, settings.merchant_client_burst)

    async def key_hash(self, client_id: str) -> str | None:
        cached = self.cache.get(client_id.encode())
        if cached is not None:
            return str(cached["api_key_hash"])
        if client_id in self.unknown:
            return None
        row = await db_call(lambda: merchants_store.client(self.app.db.pool, client_id))
        if row is None:
            self.unknown.add(client_id)
            return None
        await self.publish(
            ClientRecord(client_id=row["client_id"], api_key_hash=row["api_key_hash"], url=row["url"])
        )
        return str(row["api_key_hash"])

    async def publish(self, client: ClientRecord) -> None:
        """Refresh the cache; a failure only costs a PostgreSQL read later."""
        self.unknown.discard(client.client_id)
        try:
            await publish_all(
                self.topic,
                [(client.client_id.encode(), client.model_dump_json().encode())],
                timeout=self.app.settings.ingest_ack_timeout,
            )
        except StreamappError as exc:
            log.warning("client cache update for %s failed: %s", client.client_id, exc.detail)

    async def authenticate(self, request: aioweb.Request) -> str | None:
        """The `client-id` header names the client; `Authorization: Bearer <api key>` proves it."""
        client_id = request.headers.get("client-id")
        if client_id is None:
            return None
        if not CLIENT_ID.match(client_id):
            # No such client can exist: no PostgreSQL query, and bytes that are not
            # UTF-8 (aiohttp's lone surrogates) never reach an encode().
            raise Unauthorized("missing or wrong API key for this client-id")
        key = bearer(request)
        expected = await self.key_hash(client_id)
        if key is None or expected is None or not same(hash_key(key), expected):
            raise Unauthorized("missing or wrong API key for this client-id")
        return client_id

    async def principal(self, request: aioweb.Request) -> Principal | None:
        """The authenticator the app knows: a merchant client is a principal of kind "client"."""
        client_id = await self.authenticate(request)
        return None if client_id is None else Principal("client", client_id)


class CreateWebhook(JsonView):
    """Register a client (201, with its API key once) or re-point its URL (200, needs its key)."""

    clients: Clients
    settings: MerchantsSettings
    allowed: list[IPNetwork]

    async def post(self, request: Request) -> Response:
        raw = aiohttp_request(request)
        data = parse_json_object(await read_body(request, self.settings.max_body_bytes))
        try:
            registration = WebhookRegistration.model_validate(data)
        except ValidationError as exc:
            raise validation_errors(exc) from exc
        host = URL(registration.url).host or ""
        # IP literals are refused now; names are checked on the resolved address at connect time.
        with contextlib.suppress(ValueError):  # a name, not an address
            check_address(host, self.allowed)
        # Creating a client needs the admin (open only in dev without an admin token;
        # was: in every env); re-pointing one needs its API key. No token at all is
        # neither, refused before PostgreSQL is asked.
        admin = dev_open(self.host, self.settings.admin_token) or is_admin(self.host, raw)
        if not admin and bearer(raw) is None:
            raise Unauthorized("the admin token or the client's API key is required")
        return await db_call(lambda: self.register(raw, registration, admin=admin))

    async def register(
        self, raw: aioweb.Request, registration: WebhookRegistration, *, admin: bool
    ) -> Response:
        client_id, url = registration.client_id, registration.url
        endpoint = f"merchants:{client_id}"
        async with self.host.db.pool.acquire() as conn, conn.transaction():
            known_hash = await merchants_store.lock_client_key_hash(conn, client_id)
            if known_hash is not None:
                key = bearer(raw)
                if key is None or not same(hash_key(key), known_hash):
                    raise Unauthorized("replacing a client's URL needs that client's API key")
                await merchants_store.set_client_url(conn, client_id, url)
                secret = await store.webhook_secret(conn, endpoint) or signing.new_secret()
                await store.upsert_endpoint(conn, endpoint, url, secret)
                key_hash, api_key, status = known_hash, None, 200
            else:
                if not admin:
                    raise Unauthorized("creating a client needs the admin token")
                api_key = "sk_" + secrets.token_urlsafe(32)
                key_hash, secret, status = hash_key(api_key), signing.new_secret(), 201
                if not await merchants_store.insert_client(conn, client_id, key_hash, url):
                    raise Conflict(f"client {client_id!r} was registered concurrently; retry")
                await store.upsert_endpoint(conn, endpoint, url, secret)
        await self.clients.publish(ClientRecord(client_id=client_id, api_key_hash=key_hash, url=url))
        body: dict[str, Any] = {"client_id": client_id, "url": url, "signing_secret": secret}
        if api_key is not None:
            body["api_key"] = api_key
        return self.reply(ClientCreated if api_key is not None else ClientRegistered, body, status=status)


class NormalizeMerchant(Webhook):
    """Accept a transaction: 202 with a request id once it is durable; the answer comes later."""

    clients: Clients

    async def authorize(self, request: Request) -> None:
        raw = aiohttp_request(request)
        client_id = await self.clients.authenticate(raw)
        if client_id is None:
            raise Unauthorized("the client-id header is required")
        self.clients.limits.take(client_id)
        raw[CLIENT_ID_KEY] = client_id

    async def accept(self, request: Request, body: bytes) -> Accepted:
        raw = aiohttp_request(request)
        client_id = raw[CLIENT_ID_KEY]
        transaction = parse_transaction(body)
        idempotency_key = raw.headers.get("Idempotency-Key")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValidationFailed(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        request_id = (
            derived_id("merchants.request", client_id, idempotency_key) if idempotency_key else uuid.uuid4()
        )
        stored = transaction.model_dump(mode="json")
        must_publish = await db_call(lambda: self.remember(request_id, client_id, idempotency_key, stored))
        messages: list[tuple[bytes, bytes]] = []
        if must_publish:
            message = NormalizeRequest(
                request_id=request_id, client_id=client_id, transaction=transaction, received_at=utcnow()
            )
            key = description_key(transaction.description).encode()
            messages.append((key, message.model_dump_json().encode()))
        return Accepted(messages, {"request_id": str(request_id)}, reply=RequestAccepted)

    async def remember(
        self, request_id: uuid.UUID, client_id: str, idempotency_key: str | None, stored: dict[str, Any]
    ) -> bool:
        """Record the request; for a repeated key, tell whether it still needs publishing."""
        async with self.host.db.pool.acquire() as conn:
            if await merchants_store.insert_request(conn, request_id, client_id, idempotency_key, stored):
                return True
            row = await merchants_store.request_transaction(conn, request_id)
        if row is None or json.loads(row["transaction"]) != stored:
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different transaction")
        # Published before, unless the broker failed that time: then it is still pending.
        return bool(row["status"] == "pending")


class NormalizeResult(JsonView):
    """Poll a request: pending, done (with the merchant) or failed. Others' ids are 404."""

    clients: Clients

    async def get(self, request: Request, request_id: str) -> Response:
        client_id = await self.clients.authenticate(aiohttp_request(request))
        if client_id is None:
            raise Unauthorized("the client-id header is required")
        try:
            rid = uuid.UUID(request_id)
        except ValueError as exc:
            raise NotFound(f"no request {request_id!r}") from exc
        row = await db_call(lambda: merchants_store.request_status(self.host.db.pool, rid, client_id))
        if row is None:
            raise NotFound(f"no request {request_id!r}")
        merchant = {"name": row["merchant_name"]} if row["status"] == "done" else None
        return self.reply(
            RequestStatus, {"request_id": str(rid), "status": row["status"], "merchant": merchant}
        )


def register_merchant_views(app: Host, requests_topic: Topic, clients: Clients) -> None:
    settings = app.settings.of(MerchantsSettings)
    allowed = parse_networks(settings.delivery_allowed)
    register_client_request_views(app, clients)
    app.route(
        "/create_webhook",
        tag="merchants",
        post=Operation(
            "Register a merchants client, or re-point its webhook URL",
            ADMIN_OR_CLIENT_KEY,
            {
                201: Reply("Created: the API key is shown this once", ClientCreated),
                200: Reply("The client's URL replaced", ClientRegistered),
            },
            body=WebhookRegistration,
            errors=(BlockedDestination, Conflict, DependencyUnavailable),
        ),
    )(bound(CreateWebhook, clients=clients, settings=settings, allowed=allowed))
    app.route(
        "/normalize_merchant",
        tag="merchants",
        ingest=True,
        post=Operation(
            "Normalize a card transaction's merchant (the answer comes by webhook, or poll)",
            CLIENT,
            {202: Reply("Accepted: durable; poll or await the webhook", RequestAccepted)},
            body=Transaction,
            headers=IDEMPOTENCY_KEY,
            errors=(TooManyRequests, IdempotencyKeyReused, DependencyUnavailable, TopicNotReady),
        ),
    )(bound(NormalizeMerchant, topic=requests_topic, clients=clients))
    app.route(
        "/normalize_merchant/{request_id}",
        tag="merchants",
        get=Operation(
            "Poll a normalization request",
            CLIENT,
            {200: Reply("pending, done (with the merchant) or failed", RequestStatus)},
            errors=(NotFound, DependencyUnavailable),
        ),
    )(bound(NormalizeResult, clients=clients))
