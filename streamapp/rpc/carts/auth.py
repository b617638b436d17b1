"""Who is calling: a signed JWT (HS256) in the `authorization` metadata, `sub` = user uuid."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import jwt

from streamapp.config.carts import CartsSettings
from streamapp.errors import Unauthorized
from streamapp.models.carts import Caller

# Only HS256: accepting the algorithm named in the token's header is the classic
# JWT downgrade ("none", or RS256 verified with the HMAC key).
ALGORITHMS = ["HS256"]

Metadata = Iterable[tuple[str, str | bytes]]


class TokenVerifier:
    """Verifies bearer tokens against the configured secret, audience and issuer."""

    def __init__(self, settings: CartsSettings) -> None:
        secret = settings.carts_jwt_secret
        self._key = secret.get_secret_value() if secret is not None else None
        self._audience = settings.carts_jwt_audience
        self._issuer = settings.carts_jwt_issuer
        self._leeway = settings.carts_jwt_leeway
        self._max_lifetime = settings.carts_jwt_max_lifetime

    def authenticate(self, metadata: Metadata | None) -> Caller:
        token = bearer_token(metadata or ())
        if token is None:
            raise Unauthorized("missing bearer token in the authorization metadata")
        return self.verify(token)

    def verify(self, token: str) -> Caller:
        if self._key is None:
            raise Unauthorized("token verification is not configured (STREAMAPP_CARTS_JWT_SECRET)")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # Always checked: with no audience configured, a token that names one is
                # meant for another service and refused (settings require one outside dev).
                options={"require": ["sub", "exp"], "verify_aud": True},
            )
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        self._check_lifetime(claims)
        try:
            user = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise Unauthorized("the token's sub is not a user uuid") from exc
        roles = claims.get("roles", [])
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Unauthorized("the token's roles claim must be a list of strings")
        return Caller(user, frozenset(roles))

    def _check_lifetime(self, claims: dict[str, object]) -> None:
        """A token may live at most STREAMAPP_CARTS_JWT_MAX_LIFETIME (from `iat`, else from now)."""
        exp, iat = claims.get("exp"), claims.get("iat")
        now = time.time()
        issued = iat if isinstance(iat, (int, float)) and not isinstance(iat, bool) else now
        # PyJWT checked that exp is a number.
        if float(exp) - min(float(issued), now) > self._max_lifetime + self._leeway:  # type: ignore[arg-type]
            raise Unauthorized(f"invalid token: lives longer than {self._max_lifetime:g} s")


def bearer_token(metadata: Metadata) -> str | None:
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = text.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None
