"""Who is calling: a principal of a kind (admin, reader, client, bot, user) with an id."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from aiohttp import web as aioweb

from streamapp.errors import Unauthorized

if TYPE_CHECKING:
    from streamapp.settings import Settings

# admin: STREAMAPP_ADMIN_TOKEN; reader: STREAMAPP_READ_TOKEN (read-only routes);
# client: a merchants API client; bot: the assistance chat bot; user: a carts JWT subject.
Kind = Literal["admin", "reader", "client", "bot", "user"]

# Ids that name a built-in principal. Kinds already keep a client called "admin" from
# being the admin; refusing the names too keeps logs and delivery owners unambiguous.
RESERVED_IDS = frozenset({"admin", "reader", "assistance-bot", "bot", "system", "streamapp"})


@dataclass(frozen=True)
class Principal:
    kind: Kind
    id: str

    @property
    def admin(self) -> bool:
        return self.kind == "admin"

    def is_(self, kind: Kind, id: str) -> bool:
        return self.kind == kind and self.id == id

    def may_read(self, kind: Kind, owner: str) -> bool:
        """Owners read their own things; an owner string alone never decides (ids of kinds overlap)."""
        return self.admin or self.is_(kind, owner)


ADMIN = Principal("admin", "admin")
READER = Principal("reader", "reader")

# A pipeline's authenticator returns a principal for valid credentials, None when the
# request carries none it recognises, and raises Unauthorized for wrong ones.
Authenticator = Callable[[aioweb.Request], Awaitable[Principal | None]]


class Doors(Protocol):
    """What deciding who calls needs of the app (`streamapp.host.Host` has it): no more."""

    @property
    def settings(self) -> Settings: ...

    @property
    def authenticators(self) -> list[Authenticator]: ...


def bearer(request: aioweb.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def hash_key(key: str) -> str:
    """API keys are stored hashed; SHA-256 suffices for 256-bit random keys."""
    return hashlib.sha256(raw_bytes(key)).hexdigest()


def raw_bytes(text: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 as lone surrogates; plain
    # encode() raises on them (a 500). These are the bytes the caller sent.
    return text.encode("utf-8", "surrogateescape")


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(raw_bytes(a), raw_bytes(b))


def token_matches(request: aioweb.Request, token: object) -> bool:
    """Does the request's bearer token equal `token` (a SecretStr or None: never)?"""
    secret = getattr(token, "get_secret_value", None)
    offered = bearer(request)
    return secret is not None and offered is not None and same(offered, secret())


def is_admin(app: Doors, request: aioweb.Request) -> bool:
    return token_matches(request, app.settings.admin_token)


async def authenticate(app: Doors, request: aioweb.Request) -> Principal:
    if is_admin(app, request):
        return ADMIN
    for authenticator in app.authenticators:
        principal = await authenticator(request)
        if principal is not None:
            return principal
    raise Unauthorized("missing or wrong credentials")


def dev_open(app: Doors, token: object | None) -> bool:
    """A door with no credential configured is open in dev and closed everywhere else."""
    return token is None and app.settings.env == "dev"


def require_admin(app: Doors, request: aioweb.Request) -> Principal:
    """Admin routes: the admin token (open only in dev when none is configured)."""
    if dev_open(app, app.settings.admin_token):
        return ADMIN
    if not is_admin(app, request):
        raise Unauthorized("the admin token is required (STREAMAPP_ADMIN_TOKEN)")
    return ADMIN


def require_reader(app: Doors, request: aioweb.Request) -> Principal:
    """Read routes (licenses, tasks, reports): the read token or the admin token.

    Open in dev while no read token is configured (the admin token alone guards
    the admin routes); never open elsewhere.
    """
    settings = app.settings
    if is_admin(app, request):
        return ADMIN
    if token_matches(request, settings.read_token):
        return READER
    if dev_open(app, settings.read_token):
        return READER
    raise Unauthorized("the read token (STREAMAPP_READ_TOKEN) or the admin token is required")
