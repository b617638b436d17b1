"""Licenses views: the Salesforce webhook (JSON and SOAP) and the license read endpoints."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from faust.web import Request, Response
from pydantic import SecretStr, ValidationError

from streamapp.auth import require_reader
from streamapp.config.licenses import LicensesSettings
from streamapp.envelope import Envelope, derived_id
from streamapp.errors import (
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    StreamappError,
    ValidationFailed,
)
from streamapp.models.licenses import (
    CustomerRecord,
    parse_outbound_message,
    parse_simulator_record,
    soap_ack,
    soap_fault,
)
from streamapp.typing import Topic, aiohttp_request
from streamapp.web.base import (
    JsonView,
    bound,
    db_call,
    latest_event_time,
    refuse_nul,
    validation_errors,
)
from streamapp.web.webhook import Accepted, Webhook

if TYPE_CHECKING:
    from streamapp.host import Host

MAX_HISTORY = 1000
MAX_IDEMPOTENCY_KEY = 255
# Whether this request is SOAP, for the error response (a typed key: aiohttp warns on str keys).
IS_XML = aioweb.RequestKey("streamapp_xml", bool)


def is_xml(request: Request, body: bytes) -> bool:
    """SOAP if the sender says XML, or (the simulator sends no Content-Type) if it looks like XML."""
    content_type = request.headers.get("Content-Type", "").lower()
    if "xml" in content_type:
        return True
    if "json" in content_type:
        return False
    return body.lstrip()[:1] == b"<"


async def query(app: Host, sql: str, *args: Any) -> list[Any]:
    """Run a read query; a database that is down is a 503, not a 500."""
    return list(await db_call(lambda: app.db.pool.fetch(sql, *args)))


async def bind_key(app: Host, key: str, customer: CustomerRecord) -> None:
    """Bind an Idempotency-Key to its record; the same key with another record is a 422.

    The event id is derived from the key alone, so without this a second record
    under a used key would be dropped downstream as a duplicate, after a 202.
    """
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
    digest = hashlib.sha256(json.dumps(customer.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    stored = await db_call(
        lambda: app.db.pool.fetchval(
            "WITH new AS (INSERT INTO salesforce_idempotency_keys (idempotency_key, record_sha256)"
            " VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING record_sha256)"
            " SELECT record_sha256 FROM new UNION ALL"
            " SELECT record_sha256 FROM salesforce_idempotency_keys WHERE idempotency_key = $1",
            key,
            digest,
        )
    )
    if stored != digest:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different record")


class SalesforceWebhook(Webhook):
    """Customer records from Salesforce: the simulator's JSON or a SOAP Outbound Message."""

    def received(self, request: Request, body: bytes) -> None:
        # Before the secret check: a wrong secret is answered as SOAP to a SOAP sender.
        aiohttp_request(request)[IS_XML] = is_xml(request, body)

    def shared_secret(self) -> SecretStr | None:
        return self.host.settings.of(LicensesSettings).salesforce_secret

    async def accept(self, request: Request, body: bytes) -> Accepted:
        if aiohttp_request(request)[IS_XML]:
            return self.outbound_message(body)
        return await self.json_record(request, body)

    async def json_record(self, request: Request, body: bytes) -> Accepted:
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
        return Accepted(
            [(customer.id.encode(), envelope.encode())], {"status": "accepted", "event_ids": [str(event_id)]}
        )

    def outbound_message(self, body: bytes) -> Accepted:
        message = parse_outbound_message(body, not_after=latest_event_time(self.host.settings))
        allow = self.host.settings.of(LicensesSettings).salesforce_org_allowlist
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
        return Accepted(
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


class Licenses(JsonView):
    """The customer's current licenses, one per SKU ever licensed."""

    async def get(self, request: Request, customer_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        rows = await query(
            self.host,
            """
            SELECT c.id AS customer, l.sku, l.active, l.granted_at, l.revoked_at
            FROM (SELECT $1::text AS id) q
            LEFT JOIN customers c ON c.id = q.id
            LEFT JOIN licenses l ON l.customer_id = q.id
            ORDER BY l.sku
            """,
            customer_id,
        )
        if rows[0]["customer"] is None and rows[0]["sku"] is None:
            raise NotFound(f"unknown customer {customer_id!r}")
        return self.json(
            {
                "customer_id": customer_id,
                "licenses": [
                    {
                        "sku": row["sku"],
                        "active": row["active"],
                        "granted_at": _iso(row["granted_at"]),
                        "revoked_at": _iso(row["revoked_at"]),
                    }
                    for row in rows
                    if row["sku"] is not None
                ],
            }
        )


class LicenseHistory(JsonView):
    """Grants and revocations, newest first (`?limit=`, default 100, at most 1000)."""

    async def get(self, request: Request, customer_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        limit = _limit(request.query.get("limit"))
        rows = await query(
            self.host,
            """
            SELECT update_id, sku, action, effective_at, source_event_id, recorded_at
            FROM license_history WHERE customer_id = $1
            ORDER BY effective_at DESC, recorded_at DESC, sku DESC
            LIMIT $2
            """,
            customer_id,
            limit,
        )
        if not rows:
            known = await query(self.host, "SELECT 1 FROM customers WHERE id = $1", customer_id)
            if not known:
                raise NotFound(f"unknown customer {customer_id!r}")
        return self.json(
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
            }
        )


def register_license_views(app: Host, inbound: Topic) -> None:
    app.ingest_page("/salesforce/webhook")(bound(SalesforceWebhook, topic=inbound))
    app.page("/licenses/{customer_id}")(Licenses)
    app.page("/customers/{customer_id}/license-history")(LicenseHistory)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _limit(raw: str | None) -> int:
    from streamapp.errors import ValidationFailed

    if raw is None:
        return 100
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationFailed("limit must be an integer") from exc
    if not 1 <= value <= MAX_HISTORY:
        raise ValidationFailed(f"limit must be between 1 and {MAX_HISTORY}")
    return value
