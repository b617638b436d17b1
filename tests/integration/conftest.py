"""Session fixtures: one embedded stack and one real worker shared by the integration tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from streamapp.embedded import free_port
from tests.integration.stack import Services, Worker

SECRET = "test-shared-secret"
ORGS = "00D000000000001AAA,00D000000000002AAA"
ADMIN = "test-admin-token"
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
RECEIVER_HOST = "127.0.0.2"
REPORT_INTERVAL = 2
# Carts: the worker's gRPC port (kept across restarts) and the key tokens are signed with.
CARTS_GRPC_PORT = free_port()
CARTS_JWT_SECRET = "test-carts-jwt-secret-of-at-least-32-bytes"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    stack = Services(tmp_path_factory.mktemp("stack"))
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
async def worker(services: Services, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Worker]:
    proc = Worker(
        services,
        tmp_path_factory.mktemp("worker"),
        STREAMAPP_SALESFORCE_SECRET=SECRET,
        STREAMAPP_SALESFORCE_ORG_ALLOWLIST=ORGS,
        STREAMAPP_CARTS_GRPC_PORT=str(CARTS_GRPC_PORT),
        STREAMAPP_CARTS_JWT_SECRET=CARTS_JWT_SECRET,
        STREAMAPP_MAX_BODY_BYTES=str(64 * 1024),
        STREAMAPP_INGEST_ACK_TIMEOUT="5",
        STREAMAPP_RETRY_MAX_BACKOFF="1",
        STREAMAPP_ADMIN_TOKEN=ADMIN,
        STREAMAPP_MERCHANT_HEURISTIC_REPEAT="2000",
        STREAMAPP_MERCHANT_POOL_SIZE="2",
        # Three attempts, compressed: immediately, then twice after ~0.3 s.
        STREAMAPP_DELIVERY_SCHEDULE="0,0.3,0.3",
        STREAMAPP_DELIVERY_TIMEOUT="2",
        # Only the test receiver's address is reachable; the rest of loopback is "internal".
        STREAMAPP_DELIVERY_ALLOW_NETWORKS=f"{RECEIVER_HOST}/32",
        # Two-second report intervals; late events may amend them for ten minutes.
        STREAMAPP_REPORT_INTERVAL=str(REPORT_INTERVAL),
        STREAMAPP_REPORT_GRACE="600",
        STREAMAPP_REPORT_TICK="0.3",
        # Assistance: its tests write this routing file, then reload it (admin endpoint, SIGHUP).
        STREAMAPP_ASSISTANCE_BOT_TOKEN="test-bot-token",
        STREAMAPP_ASSISTANCE_ROUTING_FILE=str(tmp_path_factory.getbasetemp() / "assistance-routes.toml"),
    )
    proc.start()
    await proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
async def db(services: Services) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(services.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


class Client:
    """HTTP client for the worker; adds the shared secret unless told not to."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def post(
        self,
        path: str,
        body: bytes | dict[str, Any],
        *,
        secret: str | None = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        all_headers = dict(headers or {})
        if secret is not None:
            all_headers["X-Webhook-Secret"] = secret
        async with self.session.post(
            self.base + path, data=data, headers=all_headers, skip_auto_headers=["Content-Type"]
        ) as response:
            raw = await response.read()
            return response.status, _decode(raw, response.content_type), dict(response.headers)

    async def get(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        async with self.session.get(self.base + path, headers=headers) as response:
            return response.status, _decode(await response.read(), response.content_type)


def _decode(raw: bytes, content_type: str) -> Any:
    if "json" in content_type:
        return json.loads(raw)
    return raw.decode()


@pytest.fixture
async def client(worker: Worker) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, worker.url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
