"""The merchants pipeline, declared in one place: transactions -> merchant names -> client webhooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamapp.agents.merchants import ClientUpdates, Heavy, MerchantTopics, Triage, result_sink
from streamapp.config.merchants import MerchantsSettings
from streamapp.outbound.models import DELIVERY_TOPIC
from streamapp.pipeline import Pipeline
from streamapp.services.merchants import HeuristicPool
from streamapp.tables.merchants import declare_client_cache, declare_result_cache
from streamapp.topics import pipeline_topic
from streamapp.web.merchants import Clients, register_merchant_views

if TYPE_CHECKING:
    from streamapp.host import Host

REQUESTS = "merchants.requests"
HEAVY = "merchants.heavy"
RESULTS = "merchants.results"
CLIENTS = "merchants.clients"


def register(app: Host) -> None:
    settings = app.settings.of(MerchantsSettings)
    topics = MerchantTopics(
        # Keyed by description key: identical descriptions meet the same cache partition.
        requests=pipeline_topic(app, REQUESTS),
        heavy=pipeline_topic(app, HEAVY),
        results=pipeline_topic(app, RESULTS),
        clients=pipeline_topic(app, CLIENTS),
        deliveries=pipeline_topic(app, DELIVERY_TOPIC),
    )
    client_cache = declare_client_cache(app)
    result_cache = declare_result_cache(app)
    pool = HeuristicPool(settings.merchant_processes, settings.merchant_heuristic_repeat)
    app.add_worker_service(pool)
    triage = Triage(app, topics, result_cache)
    heavy = Heavy(app, topics, result_cache, pool)
    sink = result_sink(app)
    clients = Clients(app, client_cache, topics.clients)
    app.authenticators.append(clients.principal)
    app.delivery_owner_kinds["merchants"] = "client"

    app.run_agent(topics.requests, "merchants.normalize", triage)

    # Several actors: while one waits for the pool, the others take the next misses.
    # Requests are independent, so sharing a partition's events is fine; Faust
    # commits only up to the lowest unacknowledged offset.
    app.run_agent(topics.heavy, "merchants.heuristic", heavy, concurrency=pool.processes)
    app.run_agent(topics.results, "merchants.results-sink", sink)

    app.run_agent(topics.clients, "merchants.client-cache", ClientUpdates(app, client_cache))

    register_merchant_views(app, topics.requests, clients)


pipeline = Pipeline(
    name="merchants",
    register=register,
    migrations="streamapp.stores.merchants.migrations",
    settings=MerchantsSettings,
)
