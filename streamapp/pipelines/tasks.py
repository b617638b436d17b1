"""The tasks pipeline, declared in one place: TODO-app events -> task state -> periodic reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamapp.agents.tasks import TaskProcessor, snapshot_sink
from streamapp.config.tasks import TasksSettings
from streamapp.pipeline import Pipeline, Rebuild
from streamapp.services.tasks import ReportService
from streamapp.stores.tasks import task_facts
from streamapp.tables.tasks import TABLE_NAME, declare_task_facts
from streamapp.topics import pipeline_topic
from streamapp.web.tasks import register_task_views

if TYPE_CHECKING:
    from streamapp.host import Host

EVENTS = "tasks.events"
SNAPSHOTS = "tasks.snapshots"


def register(app: Host) -> None:
    # Both keyed by task id: a task's events are handled in order, by one worker.
    inbound = pipeline_topic(app, EVENTS)
    snapshots = pipeline_topic(app, SNAPSHOTS)
    facts = declare_task_facts(app)
    processor = TaskProcessor(app, snapshots, facts)
    sink = snapshot_sink(app)
    app.add_worker_service(ReportService(app))

    app.run_agent(inbound, "tasks.fold", processor)
    app.run_agent(snapshots, "tasks.snapshots-sink", sink)

    register_task_views(app, inbound)


pipeline = Pipeline(
    name="tasks",
    register=register,
    migrations="streamapp.stores.tasks.migrations",
    rebuild=Rebuild(TABLE_NAME, task_facts),
    settings=TasksSettings,
)
