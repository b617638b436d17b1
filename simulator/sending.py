"""HTTP sending shared by every simulated system: retry while the stack is down, count the answers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Tally:
    """What one simulated system has sent and how it was answered (for the progress line)."""

    name: str
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    last: str = ""

    def count(self, status: int | str, label: str = "") -> None:
        self.sent += 1
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if label:
            self.last = label

    def summary(self) -> str:
        codes = ",".join(f"{code}:{n}" for code, n in sorted(self.statuses.items()))
        return f"{self.name} {self.sent}" + (f" [{codes}]" if codes else "")


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    no_content_type: bool = False,
) -> tuple[int, bytes]:
    """POST until the answer is not a 5xx or a connection error: the stack may still be starting.

    `no_content_type` sends no Content-Type header at all, exactly like the legacy
    Salesforce simulator (the webhook sniffs JSON vs SOAP).
    """
    delay = 0.5
    while True:
        try:
            async with session.post(
                url,
                data=body,
                headers=dict(headers or {}),
                skip_auto_headers=["Content-Type"] if no_content_type else (),
            ) as response:
                content = await response.read()
                if response.status < 500:
                    return response.status, content
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
