"""Per-client limits on /normalize_merchant and the negative cache of unknown client ids (finding 14)."""

from __future__ import annotations

from typing import Any

import pytest

from streamapp.auth import hash_key
from streamapp.errors import TooManyRequests
from streamapp.ratelimit import NegativeCache, TokenBuckets
from tests.unit.webapp import bearer, served


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_buckets() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=2, clock=clock)
    for _ in range(3):
        buckets.take("a")
    with pytest.raises(TooManyRequests) as caught:
        buckets.take("a")
    assert (caught.value.status, caught.value.retry_after) == (429, 1)
    buckets.take("b")  # another client is not affected
    clock.now += 0.5  # one token back
    buckets.take("a")
    with pytest.raises(TooManyRequests):
        buckets.take("a")
    buckets.take("c")  # past max_keys the oldest key is forgotten: memory stays bounded
    assert len(buckets) == 2


def test_negative_cache() -> None:
    clock = Clock()
    cache = NegativeCache(ttl=5.0, max_keys=2, clock=clock)
    cache.add("x")
    assert "x" in cache
    clock.now = 5.1
    assert "x" not in cache
    cache.add("x")
    cache.discard("x")
    assert "x" not in cache
    for key in "abc":
        cache.add(key)
    assert "a" not in cache
    assert "c" in cache


class FakePool:
    """Stands in for asyncpg: one registered client, and a count of the lookups."""

    def __init__(self) -> None:
        self.lookups = 0

    async def fetchrow(self, sql: str, client_id: str) -> dict[str, Any] | None:
        self.lookups += 1
        if client_id == "acme":
            return {"client_id": "acme", "api_key_hash": hash_key("sk_acme"), "url": "https://acme.example/h"}
        return None


async def test_no_per_client_limit_on_normalize_merchant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 14: one client could flood the heuristic pool; an unknown client-id cost a query each."""
    async with served(
        env="dev", merchant_client_rate=1.0, merchant_client_burst=3, ingest_ack_timeout=0.05
    ) as (app, client):
        pool = FakePool()
        monkeypatch.setattr(type(app.db), "pool", property(lambda _: pool))
        for _ in range(20):
            answer = await client.post("/normalize_merchant", data=b"{}", headers={"client-id": "nobody"})
            assert answer.status == 401
        assert pool.lookups == 1  # the negative cache answered the other 19
        acme = {"client-id": "acme", **bearer("sk_acme")}
        statuses = [
            (await client.post("/normalize_merchant", data=b"{}", headers=acme)).status for _ in range(5)
        ]
        assert statuses[:3] == [422, 422, 422]  # within the burst: the body is looked at
        assert statuses[3:] == [429, 429]
        answer = await client.post("/normalize_merchant", data=b"{}", headers=acme)
        assert answer.headers["Retry-After"] == "1"
        assert (await answer.json())["error"] == "too_many_requests"
