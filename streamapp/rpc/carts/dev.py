"""What the carts pipeline adds to `streamapp dev`: its JWT secret, an admin token, its gRPC address."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Mapping, MutableMapping

import jwt

from streamapp.config.carts import CartsSettings
from streamapp.pipeline import DevAid, DevOffer, Port
from streamapp.settings import Settings

# The simulator reads the token from here (simulator/carts.py names it too).
CARTS_TOKEN_VARIABLE = "STREAMAPP_DEV_CARTS_TOKEN"
# A dev token lives a little less than the longest lifetime the server takes by default.
CARTS_TOKEN_LIFETIME = 23 * 3600.0


def grpc_ports(settings: Settings) -> list[Port]:
    """The gRPC server's port: a worker listens on it (streamapp/preflight.py checks it is free)."""
    carts = settings.of(CartsSettings)
    return [Port("STREAMAPP_CARTS_GRPC_PORT", carts.carts_grpc_host, carts.carts_grpc_port)]


def keep_secrets(kept: MutableMapping[str, str]) -> None:
    """The JWT secret the server checks tokens with, and the dev user a token is minted for."""
    kept.setdefault("carts_jwt_secret", secrets.token_urlsafe(48))
    kept.setdefault("carts_user", str(uuid.uuid4()))
    os.environ.setdefault("STREAMAPP_CARTS_JWT_SECRET", kept["carts_jwt_secret"])


def mint_carts_token(settings: Settings, user: str, now: float | None = None) -> str:
    """A token the carts server takes: the dev user, with the admin role (it may edit the catalogue)."""
    carts = settings.of(CartsSettings)
    assert carts.carts_jwt_secret is not None
    issued = int(time.time() if now is None else now)
    lifetime = min(CARTS_TOKEN_LIFETIME, carts.carts_jwt_max_lifetime)
    claims: dict[str, object] = {"sub": user, "roles": ["admin"], "iat": issued}
    claims["exp"] = issued + int(lifetime)
    if carts.carts_jwt_audience:
        claims["aud"] = carts.carts_jwt_audience
    if carts.carts_jwt_issuer:
        claims["iss"] = carts.carts_jwt_issuer
    return jwt.encode(claims, carts.carts_jwt_secret.get_secret_value(), algorithm="HS256")


def offer(settings: Settings, kept: Mapping[str, str]) -> DevOffer:
    """The banner's carts lines, the token in dev.env, and where the simulator reaches the server."""
    carts = settings.of(CartsSettings)
    address = f"{carts.carts_grpc_host}:{carts.carts_grpc_port}"
    user = kept["carts_user"]
    token = mint_carts_token(settings, user)
    return DevOffer(
        rows=[
            ("carts gRPC", address),
            ("carts token", token),
            ("", f"(user {user}, role admin; ${CARTS_TOKEN_VARIABLE} in dev.env)"),
        ],
        env={CARTS_TOKEN_VARIABLE: token, "STREAMAPP_DEV_GRPC": address},
        environment={CARTS_TOKEN_VARIABLE: token},
        simulator=["--grpc", address],
    )


DEV = DevAid(keep=keep_secrets, offer=offer)
