"""The app's aiohttp server in the test process, with settings pointing at no broker or database.

Authorization is decided before a view touches PostgreSQL or the broker, so
who may call what is tested here without them: a request that gets past the
door answers 503 (`dependency_unavailable`), one that does not a 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from streamapp.app import Role, StreamApp, create_app
from streamapp.settings import Settings

NOWHERE = {"broker_url": "kafka://127.0.0.1:1", "database_url": "postgresql://nobody@127.0.0.1:1/none"}
PROD = {
    "env": "prod",
    "salesforce_secret": "sf-secret",
    "admin_token": "admin-token",
    "read_token": "read-token",
    "tasks_secret": "tasks-secret",
    "assistance_bot_token": "bot-token",
    "carts_jwt_secret": "carts-jwt-secret-of-at-least-32-bytes!",
    "carts_jwt_audience": "shop",
    "ingest_ack_timeout": 0.2,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def served(**overrides: Any) -> AsyncIterator[tuple[StreamApp, TestClient[Any, Any]]]:
    """`role="ingest"` serves an ingest process's app; the other keywords are settings."""
    role: Role = overrides.pop("role", "worker")
    app = create_app(Settings(**{**NOWHERE, **overrides}), role=role)
    app.loop = asyncio.get_running_loop()
    app.finalize()
    web: Any = app.web  # Faust's aiohttp driver; its type stubs name only the abstract Web
    async with TestClient(TestServer(web.web_app)) as client:
        yield app, client
