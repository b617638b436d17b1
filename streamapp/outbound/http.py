"""One HTTP attempt: POST with a timeout; the response body is capped and never trusted."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp

from streamapp.errors import describe
from streamapp.outbound import signing
from streamapp.outbound.models import AttemptResult
from streamapp.outbound.schedule import retry_after_seconds
from streamapp.outbound.ssrf import BlockedDestination

USER_AGENT = "streamapp-webhooks/1"


def json_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    max_response_bytes: int,
) -> AttemptResult:
    """POST `body`; every failure mode becomes an AttemptResult, never an exception.

    `BlockedDestination` (the SSRF guard) is the one exception let through, since
    retrying cannot help and the caller dead-letters it at once. Error texts
    name the host at most, never the URL's path or query (they may be secret).
    """
    started = time.monotonic()
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            # Read a little for the attempt log; the content is never trusted or parsed.
            snippet = await response.content.read(max_response_bytes)
            latency = (time.monotonic() - started) * 1000
            error = None
            if not 200 <= response.status < 300:
                text = " ".join(snippet.decode(errors="replace").split())[:200]
                error = f"HTTP {response.status}" + (f": {text}" if text else "")
            return AttemptResult(
                status_code=response.status,
                latency_ms=latency,
                error=error,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
    except BlockedDestination:
        raise
    except TimeoutError:
        return AttemptResult(None, (time.monotonic() - started) * 1000, f"timeout after {timeout}s")
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, BlockedDestination) else None
        if cause is not None:
            raise cause from exc
        if isinstance(exc, aiohttp.InvalidURL | ValueError):
            # Its message is the whole URL.
            return AttemptResult(None, (time.monotonic() - started) * 1000, "invalid URL")
        return AttemptResult(None, (time.monotonic() - started) * 1000, describe(exc))


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    delivery_id: uuid.UUID,
    payload: dict[str, Any],
    *,
    timeout: float,
    max_response_bytes: int,
) -> AttemptResult:
    """POST `payload` with Standard Webhooks signature headers (the id is the delivery id)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return await post(
        session,
        url,
        body,
        signing.headers(secret, str(delivery_id), body),
        timeout=timeout,
        max_response_bytes=max_response_bytes,
    )
