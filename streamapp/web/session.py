"""The dashboard's browser session: a signed cookie the admin token mints on a login form.

A browser cannot send `Authorization: Bearer` on a page load or an EventSource,
and a token in the URL ends up in history and access logs. So the operator types
the admin token once into the login form; the answer sets a cookie that holds an
expiry and an HMAC of it keyed by the admin token, never the token itself:
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it),
Secure behind TLS. Every worker with the same token accepts it; changing the
token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

from aiohttp import web as aioweb

from streamapp.auth import ADMIN, Principal, dev_open, is_admin, same
from streamapp.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from streamapp.host import Host

COOKIE = "streamapp_dashboard"
LIFETIME = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _mac(secret: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"dashboard-session:{expires}".encode(), hashlib.sha256).hexdigest()


def mint(secret: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + LIFETIME)
    return f"{expires}.{_mac(secret, expires)}"


def valid(cookie: str, secret: str, now: float | None = None) -> bool:
    expires_text, _, mac = cookie.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    return same(mac, _mac(secret, expires))


def admin_secret(app: Host) -> str | None:
    token = app.settings.admin_token
    return token.get_secret_value() if token is not None else None


def has_session(app: Host, request: aioweb.Request) -> bool:
    secret, cookie = admin_secret(app), request.cookies.get(COOKIE)
    return secret is not None and cookie is not None and valid(cookie, secret)


def require_dashboard_admin(app: Host, request: aioweb.Request) -> Principal:
    """The admin, by bearer token or by session cookie (open in dev while no admin token is set).

    A cookie-authenticated request that changes something must come from a page
    of this origin: SameSite=Strict already keeps other sites' requests from
    carrying the cookie, and the Origin check also covers older browsers.
    """
    if dev_open(app, app.settings.admin_token) or is_admin(app, request):
        return ADMIN
    if not has_session(app, request):
        raise Unauthorized("the admin token is required: sign in on the dashboard, or send a bearer token")
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise Forbidden("cross-origin request refused")
    return ADMIN


def set_session(app: Host, request: aioweb.Request, response: aioweb.StreamResponse) -> None:
    secret = admin_secret(app)
    assert secret is not None
    response.set_cookie(
        COOKIE,
        mint(secret),
        max_age=LIFETIME,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
    )


def clear_session(response: aioweb.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
