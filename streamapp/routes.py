"""Route declarations: one object per route both registers its view and documents it (OpenAPI).

`StreamApp.route(path, get=Operation(...))` is the only way to add a view (plain
`page` refuses), and it checks that the view class implements exactly the
methods declared: a route or a method cannot be served undocumented. The
document itself is built from these objects by `streamapp.web.openapi`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from streamapp.errors import StreamappError

Method = Literal["get", "post", "put", "patch", "delete"]
METHODS: tuple[Method, ...] = ("get", "post", "put", "patch", "delete")
_PATH_PARAM = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True)
class Access:
    """Who may call a route (the principal kinds of streamapp/auth.py), as OpenAPI security.

    `requirements` are alternatives; each names the security schemes that must
    all be present (a merchants client sends its id *and* its API key).
    """

    name: str
    requirements: tuple[tuple[str, ...], ...]
    who: str


# The security schemes the requirements name (OpenAPI `components.securitySchemes`).
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "STREAMAPP_ADMIN_TOKEN (principal kind `admin`). In `dev` with no admin token set, "
        "admin routes are open; every other environment refuses to start without one.",
    },
    "readToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "STREAMAPP_READ_TOKEN (principal kind `reader`): read-only routes. "
        "Open in `dev` while no read token is set.",
    },
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "streamapp_dashboard",
        "description": "The dashboard's session (principal kind `admin`): set by `POST /dashboard/login` "
        "for the admin token typed once, valid 12 h on every worker with that token. A request that "
        "changes something with it from another origin is refused (403).",
    },
    "botToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "STREAMAPP_ASSISTANCE_BOT_TOKEN (principal kind `bot`).",
    },
    "clientId": {
        "type": "apiKey",
        "in": "header",
        "name": "client-id",
        "description": "A merchants API client's id (principal kind `client`), sent with its API key.",
    },
    "clientApiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The API key `POST /create_webhook` returned once for the client.",
    },
    "webhookSecret": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Webhook-Secret",
        "description": "The sending system's shared secret (STREAMAPP_SALESFORCE_SECRET, "
        "STREAMAPP_TASKS_SECRET); also accepted as a bearer token or `?token=`.",
    },
    "webhookSecretBearer": {"type": "http", "scheme": "bearer", "description": "The shared secret."},
    "webhookSecretQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The shared secret, for senders that cannot set headers.",
    },
}

PUBLIC = Access("public", (), "anyone")
ADMIN = Access("admin", (("adminToken",),), "the admin token")
DASHBOARD_ADMIN = Access(
    "admin",
    (("adminToken",), ("dashboardSession",)),
    "the admin token, or the dashboard's session cookie (`POST /dashboard/login`)",
)
READER = Access("reader", (("readToken",), ("adminToken",)), "the read token or the admin token")
CLIENT = Access("client", (("clientId", "clientApiKey"),), "a merchants client (client-id + its API key)")
BOT = Access("bot", (("botToken",),), "the assistance chat bot's token")
BOT_OR_ADMIN = Access("bot", (("botToken",), ("adminToken",)), "the chat bot's token or the admin token")
CLIENT_OR_ADMIN = Access(
    "client", (("clientId", "clientApiKey"), ("adminToken",)), "the client itself or the admin token"
)
ADMIN_OR_CLIENT_KEY = Access(
    "admin",
    (("adminToken",), ("clientApiKey",)),
    "the admin token (create a client) or the client's API key (re-point its URL)",
)
ANY_PRINCIPAL = Access(
    "any",
    (("adminToken",), ("clientId", "clientApiKey"), ("botToken",)),
    "any principal; each sees only what it owns (the admin sees all)",
)
WEBHOOK_SECRET = Access(
    "webhook",
    (("webhookSecret",), ("webhookSecretBearer",), ("webhookSecretQuery",)),
    "the sending system's shared secret",
)


def idempotency_key(limit: int, what: str) -> dict[str, str]:
    """The `Idempotency-Key` request header, described."""
    return {"Idempotency-Key": f"Retries with the same key (1-{limit} characters) are one {what}"}


@dataclass(frozen=True)
class Reply:
    """An answer: its description and the model its JSON body follows (None: no JSON).

    `content_type` None: no body at all (a redirect).
    """

    description: str
    model: type[BaseModel] | None = None
    content_type: str | None = "application/json"


@dataclass(frozen=True)
class Operation:
    """One method of a route: who may call it, what it takes and what it answers.

    `body` and `query` are the pydantic models the view validates with; the
    errors it raises on purpose are listed by class (their status and reason are
    class data), those every such route has (401, 400/413/422 for a body) are
    added by the document builder.
    """

    summary: str
    access: Access
    replies: Mapping[int, Reply]
    body: type[BaseModel] | None = None
    # Other request body types the route takes besides JSON (content type -> description).
    other_bodies: Mapping[str, str] = field(default_factory=dict)
    query: type[BaseModel] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[type[StreamappError], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Route:
    path: str
    tag: str
    operations: Mapping[Method, Operation]
    # Served by the ingest processes too: the routes that turn requests into events (and the docs).
    ingest: bool = False

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


def implemented_methods(view: type[Any]) -> set[str]:
    """The methods a Faust view class overrides (Faust serves exactly these, HEAD aside)."""
    from faust.web import View

    return {name for name in METHODS if getattr(view, name) is not getattr(View, name)}


def check_view(route: Route, view: type[Any]) -> None:
    """Refuse a view whose methods differ from its declaration: nothing served undocumented."""
    declared, served = set(route.operations), implemented_methods(view)
    if declared != served:
        raise TypeError(
            f"route {route.path}: the view implements {sorted(served)}, the declaration {sorted(declared)}"
        )
