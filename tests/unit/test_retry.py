"""Retrying transient errors: backoff growth, the cap, and giving up on permanent errors."""

from __future__ import annotations

import itertools

import pytest

from streamapp.retry import backoff_delays, retry_transient


def test_backoff_grows_and_caps() -> None:
    delays = list(itertools.islice(backoff_delays(1.0, 8.0), 6))
    for delay, nominal in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert nominal * 0.8 <= delay <= nominal * 1.2


async def test_retries_transient_until_success() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError("down")
        return "ok"

    assert await retry_transient(flaky, what="t", initial=0.001, maximum=0.002) == "ok"
    assert calls == 3


async def test_permanent_error_is_raised_at_once() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        await retry_transient(broken, what="t", initial=0.001, maximum=0.002)
    assert calls == 1


async def test_max_attempts() -> None:
    async def down() -> None:
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await retry_transient(down, what="t", initial=0.001, maximum=0.001, max_attempts=2)
