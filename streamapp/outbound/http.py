"""One delivery attempt over HTTP: signed POST, timeout, capped and untrusted response body."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from streamapp.errors import describe
from streamapp.outbound import signing
from streamapp.outbound.models import AttemptResult
from streamapp.outbound.schedule import retry_after_seconds
from streamapp.outbound.ssrf import BlockedDestination


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
    """POST `payload`; every failure mode becomes an AttemptResult, never an exception.

    `BlockedDestination` (the SSRF guard) is the one exception let through, since
    retrying cannot help and the caller dead-letters it at once.
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "streamapp-webhooks/1",
        **signing.headers(secret, str(delivery_id), body),
    }
    started = time.monotonic()
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
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
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, BlockedDestination) else None
        if cause is not None:
            raise cause from exc
        return AttemptResult(None, (time.monotonic() - started) * 1000, describe(exc))
