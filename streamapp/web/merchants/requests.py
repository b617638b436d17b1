"""`GET /clients/{client_id}/requests`: where a merchants client (or the admin) finds its requests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from faust.web import Request, Response
from pydantic import BaseModel, Field

from streamapp.auth import dev_open, is_admin
from streamapp.config.merchants import MerchantsSettings
from streamapp.errors import DependencyUnavailable, NotFound, Unauthorized
from streamapp.routes import CLIENT_OR_ADMIN, Operation, Reply
from streamapp.stores import merchants as merchants_store
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView, bound, db_call, parse_query
from streamapp.web.paging import PageQuery, decode_cursor, encode_cursor
from streamapp.web.replies import IsoTime

if TYPE_CHECKING:
    from streamapp.host import Host
    from streamapp.web.merchants import Clients


class Merchant(BaseModel):
    name: str | None


class ClientRequest(BaseModel):
    request_id: str
    status: Literal["pending", "done", "failed"]
    merchant: Merchant | None
    error: str | None
    transaction: dict[str, Any]
    received_at: IsoTime
    finished_at: IsoTime | None


class ClientRequestsQuery(PageQuery):
    status: Literal["pending", "done", "failed"] | None = Field(default=None, description="Only these")


class ClientRequestsPage(BaseModel):
    client_id: str
    requests: list[ClientRequest] = Field(description="Newest first")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last")


def client_request(row: Any) -> dict[str, Any]:
    return {
        "request_id": str(row["request_id"]),
        "status": row["status"],
        "merchant": {"name": row["merchant_name"]} if row["status"] == "done" else None,
        "error": row["error"],
        "transaction": json.loads(row["transaction"]),
        "received_at": row["created_at"].isoformat(),
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
    }


class ClientRequests(JsonView):
    """Where a client (or the admin) finds a request id: its requests with their outcome."""

    clients: Clients
    settings: MerchantsSettings

    async def get(self, request: Request, client_id: str) -> Response:
        raw = aiohttp_request(request)
        if not is_admin(self.host, raw):
            caller = await self.clients.authenticate(raw)
            if caller is None and not dev_open(self.host, self.settings.admin_token):
                raise Unauthorized("the client's id and API key, or the admin token, are required")
            if caller is not None and caller != client_id:
                raise NotFound(f"no client {client_id!r}")  # another's looks like an unknown one
        query = parse_query(request, ClientRequestsQuery)
        # Keyset, newest first: (received, id) of the last request shown.
        received, after_id = decode_cursor(query.after, 2) if query.after else (None, None)
        rows = await db_call(
            lambda: merchants_store.client_requests(
                self.host.db.pool, client_id, query.status, received, after_id, query.limit + 1
            )
        )
        if not rows and query.after is None:
            known = await db_call(lambda: merchants_store.client_exists(self.host.db.pool, client_id))
            if not known:
                raise NotFound(f"no client {client_id!r}")
        shown = rows[: query.limit]
        cursor = (
            encode_cursor(shown[-1]["created_at"].isoformat(), str(shown[-1]["request_id"]))
            if len(rows) > query.limit
            else None
        )
        return self.reply(
            ClientRequestsPage,
            {"client_id": client_id, "requests": [client_request(r) for r in shown], "next": cursor},
        )


def register_client_request_views(app: Host, clients: Clients) -> None:
    settings = app.settings.of(MerchantsSettings)
    app.route(
        "/clients/{client_id}/requests",
        tag="merchants",
        get=Operation(
            "A client's normalization requests, newest first, a page at a time",
            CLIENT_OR_ADMIN,
            {200: Reply("A page of the client's requests", ClientRequestsPage)},
            query=ClientRequestsQuery,
            errors=(NotFound, DependencyUnavailable),
        ),
    )(bound(ClientRequests, clients=clients, settings=settings))
