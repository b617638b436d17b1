"""The assistance pipeline, declared in one place: chat-bot requests -> routed notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamapp.agents.assistance import RequestProcessor
from streamapp.config.assistance import AssistanceSettings
from streamapp.outbound.models import DELIVERY_TOPIC
from streamapp.pipeline import Pipeline
from streamapp.services.assistance import Routing
from streamapp.topics import pipeline_topic
from streamapp.web.assistance import bot_authenticator, register_assistance_views

if TYPE_CHECKING:
    from streamapp.host import Host

REQUESTS = "assistance.requests"


def register(app: Host) -> None:
    # Keyed by request id: requests are independent, so they spread over every partition.
    requests = pipeline_topic(app, REQUESTS)
    deliveries = pipeline_topic(app, DELIVERY_TOPIC)
    routing = Routing(app)
    app.add_dependency(routing)
    processor = RequestProcessor(app, deliveries)
    app.authenticators.append(bot_authenticator(app))
    app.delivery_owner_kinds["assistance"] = "bot"

    app.run_agent(requests, "assistance.notify", processor)

    register_assistance_views(app, requests, routing)


pipeline = Pipeline(
    name="assistance",
    register=register,
    migrations="streamapp.stores.assistance.migrations",
    settings=AssistanceSettings,
)
