"""The carts pipeline, declared in one place: gRPC -> PostgreSQL + outbox -> carts.events -> totals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamapp.agents.carts import ByUser, CartTopics, TotalsKeeper
from streamapp.config.carts import CartsSettings
from streamapp.pipeline import Pipeline
from streamapp.rpc.carts.dev import DEV, grpc_ports
from streamapp.tables.carts import declare_cart_totals
from streamapp.topics import pipeline_topic

if TYPE_CHECKING:
    from streamapp.host import Host

EVENTS = "carts.events"
BY_USER = "carts.events-by-user"


def register(app: Host) -> None:
    topics = CartTopics(events=pipeline_topic(app, EVENTS), by_user=pipeline_topic(app, BY_USER))
    totals = declare_cart_totals(app)
    if app.role == "worker":
        # The gRPC server and the outbox relay belong to workers: an ingest
        # process serves HTTP webhooks only.
        start_carts_services(app, topics)

    by_user = ByUser(app, topics)
    keeper = TotalsKeeper(app, totals)

    app.run_agent(topics.events, "carts.by-user", by_user)
    app.run_agent(topics.by_user, "carts.user-totals", keeper)


def start_carts_services(app: Host, topics: CartTopics) -> None:
    # Imported here: the gRPC modules generate their protobuf code on first import.
    from streamapp.rpc.carts.server import CartsServer
    from streamapp.stores.carts.outbox import OutboxRelay

    relay = OutboxRelay(app, topics.events)
    server = CartsServer(app, relay)
    app.add_worker_service(relay)
    app.add_worker_service(server)

    # mode's handler type wants `signal` as a required keyword; Faust passes it.
    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator]
    async def stop_carts(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The app stops its children newest first, which would stop ours (added
        # first) after the database and the producer they use. This runs before.
        await server.stop()
        await relay.stop()


pipeline = Pipeline(
    name="carts",
    register=register,
    migrations="streamapp.stores.carts.migrations",
    settings=CartsSettings,
    ports=grpc_ports,
    dev=DEV,
)
