"""Carts bearer tokens: HS256 only, sub is a user uuid, exp required, roles decide admin."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from streamapp.config.carts import CartsSettings
from streamapp.errors import Forbidden, Unauthorized
from streamapp.rpc.carts.auth import TokenVerifier, bearer_token

SECRET = "unit-test-carts-secret-0123456789abcdef-long-enough-for-hs384"


def verifier(**overrides: Any) -> TokenVerifier:
    return TokenVerifier(CartsSettings(carts_jwt_secret=SECRET, **overrides))


def token(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, key, algorithm=algorithm)


def test_valid_tokens() -> None:
    user = uuid.uuid4()
    caller = verifier().authenticate([("authorization", f"Bearer {token({'sub': str(user)})}")])
    assert caller.user_uuid == user
    assert not caller.admin
    with pytest.raises(Forbidden):
        caller.require_admin()
    admin = verifier().verify(token({"sub": str(user), "roles": ["admin", "x"]}))
    assert admin.admin
    admin.require_admin()
    assert verifier().verify(token({"sub": str(user), "roles": "admin other"})).admin


@pytest.mark.parametrize(
    "bad",
    [
        token({"sub": str(uuid.uuid4())}, key="another-secret-of-at-least-32-bytes!!"),
        token({"sub": "alice"}),
        token({"sub": str(uuid.uuid4()), "roles": [1]}),
        token({"sub": str(uuid.uuid4()), "exp": int(time.time()) - 3600}),
        jwt.encode({"sub": str(uuid.uuid4())}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),  # no sub
        jwt.encode({"sub": str(uuid.uuid4()), "exp": int(time.time()) + 60}, SECRET, algorithm="HS384"),
        "not.a.token",
    ],
)
def test_invalid_tokens(bad: str) -> None:
    with pytest.raises(Unauthorized):
        verifier().verify(bad)


def test_audience_issuer_and_leeway() -> None:
    user = str(uuid.uuid4())
    strict = verifier(carts_jwt_audience="shop", carts_jwt_issuer="auth.example")
    strict.verify(token({"sub": user, "aud": "shop", "iss": "auth.example"}))
    for claims in ({"sub": user, "aud": "other", "iss": "auth.example"}, {"sub": user, "aud": "shop"}):
        with pytest.raises(Unauthorized):
            strict.verify(token(claims))
    just_expired = token({"sub": user, "exp": int(time.time()) - 5})
    verifier().verify(just_expired)  # within the default 30 s leeway
    with pytest.raises(Unauthorized):
        verifier(carts_jwt_leeway=0).verify(just_expired)


def test_metadata_and_unconfigured_secret() -> None:
    assert bearer_token([("x", "y"), ("Authorization", b"Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("authorization", "Bearer ")]) is None
    with pytest.raises(Unauthorized):
        verifier().authenticate(None)
    with pytest.raises(Unauthorized, match="not configured"):
        TokenVerifier(CartsSettings()).verify(token({"sub": str(uuid.uuid4())}))


def test_settings_refuse_a_short_secret() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CartsSettings(carts_jwt_secret="short")
    assert CartsSettings(carts_jwt_secret="").carts_jwt_secret is None


def test_jwt_edges_foreign_audience() -> None:
    """Finding 6: with no audience configured, a token for another service was accepted."""
    user = str(uuid.uuid4())
    with pytest.raises(Unauthorized, match="audience"):
        verifier().verify(token({"sub": user, "aud": "another-service"}))
    assert verifier().verify(token({"sub": user})).user_uuid == uuid.UUID(user)
    shop = verifier(carts_jwt_audience="shop")
    assert shop.verify(token({"sub": user, "aud": "shop"})).user_uuid == uuid.UUID(user)
    with pytest.raises(Unauthorized):
        shop.verify(token({"sub": user, "aud": "another-service"}))


def test_jwt_edges_lifetime() -> None:
    """Finding 6: a token valid until 2100 was accepted; now at most STREAMAPP_CARTS_JWT_MAX_LIFETIME."""
    user = str(uuid.uuid4())
    now = int(time.time())
    until_2100 = 4102444800
    with pytest.raises(Unauthorized, match="lives longer"):
        verifier().verify(token({"sub": user, "exp": until_2100}))
    with pytest.raises(Unauthorized, match="lives longer"):
        verifier(carts_jwt_max_lifetime=600).verify(token({"sub": user, "iat": now, "exp": now + 3600}))
    # A long-lived token issued long ago is still judged by its whole lifetime.
    with pytest.raises(Unauthorized, match="lives longer"):
        verifier(carts_jwt_max_lifetime=600).verify(token({"sub": user, "iat": now - 3000, "exp": now + 60}))
    assert verifier(carts_jwt_max_lifetime=600).verify(token({"sub": user, "iat": now, "exp": now + 500}))
