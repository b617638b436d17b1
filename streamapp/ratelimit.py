"""Per-caller limits in one process: token buckets (429 with Retry-After) and a short negative cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from streamapp.errors import TooManyRequests


class TokenBuckets:
    """`rate` requests a second per key with bursts of `burst`; the least recently seen keys are
    forgotten past `max_keys`, so a flood of distinct keys costs bounded memory (a forgotten key
    starts again with a full bucket, which is no more than a new caller gets)."""

    def __init__(
        self, rate: float, burst: int, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are remembered (at most `max_keys`)."""
        return len(self._buckets)

    def take(self, key: str) -> None:
        """Spend one token of `key`'s bucket, or raise TooManyRequests saying when one is back."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._remember(key, (tokens, now))
            raise TooManyRequests(f"over {self.rate:g} requests/s for {key!r}", (1.0 - tokens) / self.rate)
        self._remember(key, (tokens - 1.0, now))

    def _remember(self, key: str, state: tuple[float, float]) -> None:
        self._buckets[key] = state
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


class NegativeCache:
    """Keys recently found not to exist, for `ttl` seconds, at most `max_keys` of them."""

    def __init__(
        self, ttl: float, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self.clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until < self.clock():
            del self._until[key]
            return False
        return True

    def add(self, key: str) -> None:
        self._until.pop(key, None)
        self._until[key] = self.clock() + self.ttl
        while len(self._until) > self.max_keys:
            self._until.popitem(last=False)

    def discard(self, key: str) -> None:
        self._until.pop(key, None)
