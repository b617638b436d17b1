"""The licenses pipeline, declared in one place: Salesforce records -> licenses in PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamapp.agents.licenses import (
    LicenseTopics,
    RecordProcessor,
    customer_sink,
    license_update_sink,
)
from streamapp.config.licenses import LicensesSettings
from streamapp.pipeline import Pipeline, Rebuild
from streamapp.stores.licenses import license_states
from streamapp.tables.licenses import TABLE_NAME, declare_license_state
from streamapp.topics import pipeline_topic
from streamapp.web.licenses import register_license_views

if TYPE_CHECKING:
    from streamapp.host import Host

INBOUND = "licenses.inbound"
UPDATES = "licenses.updates"
CUSTOMERS = "licenses.customers"
UPDATES_REPLAY = "licenses.updates.replay"
CUSTOMERS_REPLAY = "licenses.customers.replay"


def register(app: Host) -> None:
    # Every topic is keyed by customer id: per-customer order end to end.
    topics = LicenseTopics(
        inbound=pipeline_topic(app, INBOUND),
        updates=pipeline_topic(app, UPDATES),
        customers=pipeline_topic(app, CUSTOMERS),
        updates_replay=pipeline_topic(app, UPDATES_REPLAY),
        customers_replay=pipeline_topic(app, CUSTOMERS_REPLAY),
    )
    state = declare_license_state(app)
    processor = RecordProcessor(app, topics, state)
    updates_sink = license_update_sink(app)
    customers_sink = customer_sink(app)

    app.run_agent(topics.inbound, "licenses.records", processor)

    # The records agent writes PostgreSQL itself; these two only write the rows it
    # could not, once they are replayed from the dead-letter topic.
    app.run_agent(topics.updates_replay, "licenses.updates-sink", updates_sink)
    app.run_agent(topics.customers_replay, "licenses.customers-sink", customers_sink)

    register_license_views(app, topics.inbound)


pipeline = Pipeline(
    name="licenses",
    register=register,
    migrations="streamapp.stores.licenses.migrations",
    rebuild=Rebuild(TABLE_NAME, license_states),
    settings=LicensesSettings,
)
