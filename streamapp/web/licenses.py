"""Licenses views: the Salesforce webhook (JSON and SOAP) and the license read endpoints."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from faust.web import Request, Response
from pydantic import BaseModel, Field, SecretStr, ValidationError

from streamapp.auth import require_reader
from streamapp.config.licenses import LicensesSettings
from streamapp.envelope import Envelope, derived_id
from streamapp.errors import (
    DependencyUnavailable,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    StreamappError,
    ValidationFailed,
)
from streamapp.models.licenses import (
    CustomerRecord,
    SimulatorRecord,
    parse_outbound_message,
    parse_simulator_record,
    soap_ack,
    soap_fault,
)
from streamapp.readiness import TopicNotReady
from streamapp.routes import READER, WEBHOOK_SECRET, Operation, Reply, idempotency_key
from streamapp.stores import licenses as store
from streamapp.typing import Topic, aiohttp_request
from streamapp.web import webhook
from streamapp.web.base import (
    JsonView,
    bound,
    db_call,
    latest_event_time,
    parse_query,
    refuse_nul,
    validation_errors,
)
from streamapp.web.paging import PageQuery, decode_cursor, next_cursor
from streamapp.web.replies import Accepted, IsoTime

if TYPE_CHECKING:
    from streamapp.host import Host

MAX_HISTORY = 1000
MAX_IDEMPOTENCY_KEY = 255
# Whether this request is SOAP, for the error response (a typed key: aiohttp warns on str keys).
IS_XML = aioweb.RequestKey("streamapp_xml", bool)


class License(BaseModel):
    sku: str
    active: bool
    granted_at: IsoTime | None
    revoked_at: IsoTime | None


class CustomerLicenses(BaseModel):
    customer_id: str
    licenses: list[License]


class CustomerSummary(BaseModel):
    customer_id: str
    name: str
    account_manager: str
    signed_tos: bool
    updated_at: IsoTime
    licenses: list[License]


class CustomersPage(BaseModel):
    customers: list[CustomerSummary] = Field(description="By customer id")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last")


class HistoryEntry(BaseModel):
    update_id: str
    sku: str
    action: str
    effective_at: IsoTime
    source_event_id: str
    recorded_at: IsoTime


class LicenseHistoryReply(BaseModel):
    customer_id: str
    history: list[HistoryEntry]


class HistoryQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=MAX_HISTORY, description="Newest entries to return")


IDEMPOTENCY_KEY = idempotency_key(MAX_IDEMPOTENCY_KEY, "record")
SOAP_ACK = "SOAP: an Ack (`X-Event-Ids` names the events); errors are SOAP Faults"
SOAP_BODY = "A Salesforce SOAP Outbound Message (notifications of Account changes)"


def is_xml(request: Request, body: bytes) -> bool:
    """SOAP if the sender says XML, or (the simulator sends no Content-Type) if it looks like XML."""
    content_type = request.headers.get("Content-Type", "").lower()
    if "xml" in content_type:
        return True
    if "json" in content_type:
        return False
    return body.lstrip()[:1] == b"<"


async def bind_key(app: Host, key: str, customer: CustomerRecord) -> None:
    """Bind an Idempotency-Key to its record; the same key with another record is a 422.

    The event id is derived from the key alone, so without this a second record
    under a used key would be dropped downstream as a duplicate, after a 202.
    """
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
    digest = hashlib.sha256(json.dumps(customer.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    stored = await db_call(lambda: store.bind_idempotency_key(app.db.pool, key, digest))
    if stored != digest:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different record")


class SalesforceWebhook(webhook.Webhook):
    """Customer records from Salesforce: the simulator's JSON or a SOAP Outbound Message."""

    settings: LicensesSettings

    def received(self, request: Request, body: bytes) -> None:
        # Before the secret check: a wrong secret is answered as SOAP to a SOAP sender.
        aiohttp_request(request)[IS_XML] = is_xml(request, body)

    def shared_secret(self) -> SecretStr | None:
        return self.settings.salesforce_secret

    async def accept(self, request: Request, body: bytes) -> webhook.Accepted:
        if aiohttp_request(request)[IS_XML]:
            return self.outbound_message(body)
        return await self.json_record(request, body)

    async def json_record(self, request: Request, body: bytes) -> webhook.Accepted:
        refuse_nul(body)
        try:
            customer = parse_simulator_record(body)
        except ValidationError as exc:
            raise validation_errors(exc) from exc
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None:
            await bind_key(self.host, idempotency_key, customer)
        event_id = derived_id("salesforce.json", idempotency_key) if idempotency_key else uuid.uuid4()
        envelope = Envelope(
            event_id=event_id,
            source="salesforce.json",
            key=customer.id,
            payload=customer.model_dump(mode="json"),
        )
        return webhook.Accepted(
            [(customer.id.encode(), envelope.encode())],
            {"status": "accepted", "event_ids": [str(event_id)]},
            reply=Accepted,
        )

    def outbound_message(self, body: bytes) -> webhook.Accepted:
        message = parse_outbound_message(body, not_after=latest_event_time(self.settings))
        allow = self.settings.salesforce_org_allowlist
        if allow and message.organization_id not in allow:
            raise Forbidden(f"organization {message.organization_id!r} is not allowed")
        seen: dict[str, Envelope] = {}
        for notification in message.notifications:
            # The notification Id is stable across Salesforce's resends: derive the
            # event id from it so the agent recognises a resend as a duplicate.
            event_id = derived_id("salesforce.soap", message.organization_id, notification.notification_id)
            seen.setdefault(
                str(event_id),
                Envelope(
                    event_id=event_id,
                    source=f"salesforce.soap.{notification.sobject_type.lower()}",
                    key=notification.customer.id,
                    occurred_at=notification.occurred_at,
                    payload=notification.customer.model_dump(mode="json"),
                ),
            )
        return webhook.Accepted(
            [(env.key.encode(), env.encode()) for env in seen.values()],
            response=self.bytes(
                soap_ack(True),
                content_type="text/xml",
                status=200,
                headers={"X-Event-Ids": ",".join(seen)},
            ),
        )

    def error_response(self, request: Request, exc: StreamappError) -> Response:
        if aiohttp_request(request).get(IS_XML):
            # Salesforce reads SOAP: a Fault (never an Ack) makes it resend later.
            return self.bytes(
                soap_fault(exc.reason, exc.detail),
                content_type="text/xml",
                status=exc.status,
                headers={"X-Error-Reason": exc.reason},
            )
        return super().error_response(request, exc)


class Customers(JsonView):
    """Every customer with its licenses: where a person finds a customer id to look at."""

    async def get(self, request: Request) -> Response:
        require_reader(self.host, aiohttp_request(request))
        page = parse_query(request, PageQuery)
        after = decode_cursor(page.after, 1)[0] if page.after else None
        customers = await db_call(lambda: store.customers(self.host.db.pool, after, page.limit + 1))
        shown = customers[: page.limit]
        licenses: dict[str, list[dict[str, Any]]] = {}
        for row in await db_call(lambda: store.licenses_of(self.host.db.pool, [c["id"] for c in shown])):
            licenses.setdefault(row["customer_id"], []).append(_license(row))
        return self.reply(
            CustomersPage,
            {
                "customers": [
                    {
                        "customer_id": c["id"],
                        "name": c["name"],
                        "account_manager": c["account_manager"],
                        "signed_tos": c["signed_tos"],
                        "updated_at": _iso(c["updated_at"]),
                        "licenses": licenses.get(c["id"], []),
                    }
                    for c in shown
                ],
                "next": next_cursor(customers, page.limit, "id"),
            },
        )


class Licenses(JsonView):
    """The customer's current licenses, one per SKU ever licensed."""

    async def get(self, request: Request, customer_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        rows = await db_call(lambda: store.customer_licenses(self.host.db.pool, customer_id))
        if rows[0]["customer"] is None and rows[0]["sku"] is None:
            raise NotFound(f"unknown customer {customer_id!r}")
        return self.reply(
            CustomerLicenses,
            {
                "customer_id": customer_id,
                "licenses": [_license(row) for row in rows if row["sku"] is not None],
            },
        )


class LicenseHistory(JsonView):
    """Grants and revocations, newest first (`?limit=`, default 100, at most 1000)."""

    async def get(self, request: Request, customer_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        limit = parse_query(request, HistoryQuery).limit
        rows = await db_call(lambda: store.license_history(self.host.db.pool, customer_id, limit))
        if not rows:
            known = await db_call(lambda: store.customer_exists(self.host.db.pool, customer_id))
            if not known:
                raise NotFound(f"unknown customer {customer_id!r}")
        return self.reply(
            LicenseHistoryReply,
            {
                "customer_id": customer_id,
                "history": [
                    {
                        "update_id": str(row["update_id"]),
                        "sku": row["sku"],
                        "action": row["action"],
                        "effective_at": _iso(row["effective_at"]),
                        "source_event_id": str(row["source_event_id"]),
                        "recorded_at": _iso(row["recorded_at"]),
                    }
                    for row in rows
                ],
            },
        )


def register_license_views(app: Host, inbound: Topic) -> None:
    settings = app.settings.of(LicensesSettings)
    app.route(
        "/salesforce/webhook",
        tag="licenses",
        ingest=True,
        post=Operation(
            "Salesforce customer records (JSON, or a SOAP Outbound Message)",
            WEBHOOK_SECRET,
            {
                202: Reply("JSON record accepted: durable in the topic", Accepted),
                200: Reply(SOAP_ACK, None, "text/xml"),
            },
            body=SimulatorRecord,
            other_bodies={"text/xml": SOAP_BODY},
            headers=IDEMPOTENCY_KEY,
            errors=(Forbidden, IdempotencyKeyReused, DependencyUnavailable, TopicNotReady),
        ),
    )(bound(SalesforceWebhook, topic=inbound, settings=settings))
    app.route(
        "/licenses",
        tag="licenses",
        get=Operation(
            "Customers and their licenses, a page at a time",
            READER,
            {200: Reply("A page of customers, by id", CustomersPage)},
            query=PageQuery,
            errors=(DependencyUnavailable,),
        ),
    )(Customers)
    app.route(
        "/licenses/{customer_id}",
        tag="licenses",
        get=Operation(
            "A customer's licenses, one per SKU ever licensed",
            READER,
            {200: Reply("The licenses", CustomerLicenses)},
            errors=(NotFound, DependencyUnavailable),
        ),
    )(Licenses)
    app.route(
        "/customers/{customer_id}/license-history",
        tag="licenses",
        get=Operation(
            "A customer's grants and revocations, newest first",
            READER,
            {200: Reply("The history", LicenseHistoryReply)},
            query=HistoryQuery,
            errors=(NotFound, DependencyUnavailable),
        ),
    )(LicenseHistory)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _license(row: Any) -> dict[str, Any]:
    return {
        "sku": row["sku"],
        "active": row["active"],
        "granted_at": _iso(row["granted_at"]),
        "revoked_at": _iso(row["revoked_at"]),
    }
