"""The gRPC server (grpc.aio) as a service of the app: Item, Cart, health and reflection on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from mode import Service

from streamapp.config.carts import CartsSettings
from streamapp.rpc.carts.auth import TokenVerifier
from streamapp.rpc.carts.interceptor import MetricsInterceptor
from streamapp.rpc.carts.protos import CART_SERVICE, ITEM_SERVICE, cart_pb2_grpc, item_pb2_grpc
from streamapp.rpc.carts.rpc import RpcRunner
from streamapp.rpc.carts.servicers import Backend, CartServicer, ItemServicer
from streamapp.rpc.carts.tracing import Tracing

if TYPE_CHECKING:
    from streamapp.host import Host
    from streamapp.stores.carts.outbox import OutboxRelay

log = logging.getLogger(__name__)
HEALTH_INTERVAL = 5.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class CartsServer(Service):
    """Binds in `on_start` (a taken port fails the start), drains in-flight calls in `on_stop`.

    Health follows PostgreSQL: NOT_SERVING while it does not answer, so load
    balancers stop sending calls that could only fail.
    """

    def __init__(self, app: Host, relay: OutboxRelay, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self.tracing = Tracing(app.settings.of(CartsSettings))
        runner = RpcRunner(TokenVerifier(app.settings.of(CartsSettings)), lambda: self.tracing.tracer)
        self.backend = Backend(app, runner, relay.poke)
        # grpc-stubs does not know the asyncio servicer.
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def on_start(self) -> None:
        settings = self.app.settings.of(CartsSettings)
        await self.tracing.maybe_start()
        # The servicers need the pool: open it now. The app starts the database
        # after its own children, and `maybe_start` makes that a no-op.
        await self.app.db.maybe_start()
        size = settings.carts_grpc_max_message_bytes
        server = grpc.aio.server(
            interceptors=[MetricsInterceptor()],
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                # gRPC sets SO_REUSEPORT by default: a second worker on the same
                # port would silently share it instead of failing.
                ("grpc.so_reuseport", 0),
            ],
        )
        item_pb2_grpc.add_ItemServicer_to_server(ItemServicer(self.backend), server)  # type: ignore[no-untyped-call]
        cart_pb2_grpc.add_CartServicer_to_server(CartServicer(self.backend), server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        services = (ITEM_SERVICE, CART_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(services, server)
        address = f"{settings.carts_grpc_host}:{settings.carts_grpc_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"carts: cannot listen on {address}: {exc}") from exc
        await server.start()
        self._server = server
        await self._set_health(SERVING)
        self.add_future(self._watch_database())
        log.info("carts: gRPC listening on %s:%d", settings.carts_grpc_host, self.port)

    async def on_stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await self.health.enter_graceful_shutdown()
            await server.stop(self.app.settings.of(CartsSettings).carts_grpc_grace)
        await self.tracing.stop()

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", ITEM_SERVICE, CART_SERVICE):
            await self.health.set(name, status)

    async def _watch_database(self) -> None:
        serving = True
        while not self.should_stop:
            await asyncio.sleep(HEALTH_INTERVAL)
            with contextlib.suppress(Exception):
                ok = await self.app.db.ping()
                if ok != serving and self._server is not None:
                    serving = ok
                    await self._set_health(SERVING if ok else NOT_SERVING)
                    log.warning("carts: PostgreSQL %s; health %s", "is back" if ok else "is down", ok)
