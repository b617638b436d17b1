"""Who is calling: the admin token, or an owner recognised by a pipeline's authenticator."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web as aioweb

from streamapp.errors import Unauthorized

if TYPE_CHECKING:
    from streamapp.app import StreamApp

# A pipeline's authenticator returns the owner id for valid credentials, None when the
# request carries none it recognises, and raises Unauthorized for wrong ones.
Authenticator = Callable[[aioweb.Request], Awaitable[str | None]]


@dataclass(frozen=True)
class Principal:
    owner: str
    admin: bool = False

    def may_read(self, owner: str) -> bool:
        return self.admin or self.owner == owner


def bearer(request: aioweb.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def hash_key(key: str) -> str:
    """API keys are stored hashed; SHA-256 suffices for 256-bit random keys."""
    return hashlib.sha256(key.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def is_admin(app: StreamApp, request: aioweb.Request) -> bool:
    token = app.settings.admin_token
    offered = bearer(request)
    return token is not None and offered is not None and same(offered, token.get_secret_value())


async def authenticate(app: StreamApp, request: aioweb.Request) -> Principal:
    if is_admin(app, request):
        return Principal(owner="admin", admin=True)
    for authenticator in app.authenticators:
        owner = await authenticator(request)
        if owner is not None:
            return Principal(owner=owner)
    raise Unauthorized("missing or wrong credentials")
