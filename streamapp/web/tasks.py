"""Tasks views: the TODO app's webhook, tasks and their events, users' tasks, reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from faust.web import Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from streamapp.auth import require_reader
from streamapp.config.tasks import TasksSettings
from streamapp.envelope import Envelope, utcnow
from streamapp.errors import DependencyUnavailable, NotFound, ValidationFailed
from streamapp.models.tasks import TaskFact, TaskWebhook
from streamapp.readiness import TopicNotReady
from streamapp.routes import READER, WEBHOOK_SECRET, Operation, Reply
from streamapp.rules.tasks import ReportContent, build_report
from streamapp.stores import tasks as store
from streamapp.typing import Topic, aiohttp_request
from streamapp.web.base import (
    JsonView,
    bound,
    db_call,
    latest_event_time,
    parse_json_object,
    parse_query,
    validation_errors,
)
from streamapp.web.paging import PageQuery, decode_cursor, encode_cursor
from streamapp.web.replies import AcceptedOne, IsoTime
from streamapp.web.webhook import Accepted, Webhook

if TYPE_CHECKING:
    from streamapp.host import Host

MAX_SUMMARY_RANGE = timedelta(days=366)


class TaskReply(BaseModel):
    id: str
    user_id: str | None
    content: str | None
    status: Literal["open", "completed", "deleted"]
    created: IsoTime | None
    completed: IsoTime | None
    deleted: IsoTime | None
    last_event_at: IsoTime | None


class TaskEvent(BaseModel):
    event_id: str
    event: str
    timestamp: IsoTime
    status: Literal["applied", "rejected", "pending"]
    reason: str | None
    late: bool | None
    received_at: IsoTime | None


class TaskEventsReply(BaseModel):
    task_id: str
    events: list[TaskEvent]


class TaskEventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["applied", "rejected", "pending"] | None = None


class UserTasksQuery(PageQuery):
    status: Literal["open", "completed", "deleted"] | None = Field(default=None, description="Only these")


class UserTasksPage(BaseModel):
    user_id: str
    tasks: list[TaskReply] = Field(description="By creation time (never created: first), then id")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last")


class RangeQuery(BaseModel):
    """Both ends ISO-8601 with a UTC offset (`+` encoded as %2B, or `Z`); `to` after `from`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    start: str = Field(alias="from", json_schema_extra={"format": "date-time"})
    end: str = Field(alias="to", json_schema_extra={"format": "date-time"})


class StoredReport(ReportContent):
    model_config = ConfigDict(frozen=True)

    revision: int
    generated_at: IsoTime | None


class ReportsReply(BaseModel):
    user_id: str
    reports: list[StoredReport]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_time(raw: str | None, name: str) -> datetime:
    if raw is None:
        raise ValidationFailed(f"`{name}` is required (ISO-8601 with an offset)")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise ValidationFailed(f"`{name}` is not an ISO-8601 time: {raw!r}") from exc
    if value.tzinfo is None:
        raise ValidationFailed(f"`{name}` needs a UTC offset")
    return value.astimezone(UTC)


def time_range(request: Request) -> tuple[datetime, datetime]:
    query = parse_query(request, RangeQuery)
    start = parse_time(query.start, "from")
    end = parse_time(query.end, "to")
    if end <= start:
        raise ValidationFailed("`to` must be after `from`")
    return start, end


def task_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["task_id"],
        "user_id": row["user_id"],
        "content": row["content"],
        "status": row["status"],
        "created": iso(row["created_at"]),
        "completed": iso(row["completed_at"]),
        "deleted": iso(row["deleted_at"]),
        "last_event_at": iso(row["last_event_at"]),
    }


class TasksWebhook(Webhook):
    """Task created / updated / deleted: 202 with the event id once durable."""

    settings: TasksSettings

    def shared_secret(self) -> SecretStr | None:
        return self.settings.tasks_secret

    async def accept(self, request: Request, body: bytes) -> Accepted:
        data = parse_json_object(body)
        try:
            hook = TaskWebhook.model_validate(data)
        except ValidationError as exc:
            raise validation_errors(exc) from exc
        if hook.timestamp > latest_event_time(self.settings):
            raise ValidationFailed(
                "timestamp is in the future",
                errors=[{"field": "timestamp", "type": "in_the_future", "message": "in the future"}],
            )
        event_id = hook.event_id()
        fact = TaskFact(
            event_id=event_id,
            event=hook.event,
            ts=hook.timestamp,
            user_id=hook.metadata.user_id,
            content=hook.metadata.content,
            completed=hook.metadata.is_completed,
            received_at=utcnow(),
        )
        envelope = Envelope(
            event_id=event_id,
            source="todo.webhook",
            key=hook.metadata.id,
            occurred_at=hook.timestamp,
            payload=fact.model_dump(mode="json"),
        )
        return Accepted(
            [(hook.metadata.id.encode(), envelope.encode())],
            {"status": "accepted", "event_id": str(event_id)},
            reply=AcceptedOne,
        )


class Task(JsonView):
    async def get(self, request: Request, task_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        row = await db_call(lambda: store.task(self.host.db.pool, task_id))
        if row is None or row["status"] == "unknown":
            raise NotFound(f"unknown task {task_id!r}")
        return self.reply(TaskReply, task_json(row))


class TaskEvents(JsonView):
    """Every event of the task in event-time order, with what happened to it and why."""

    async def get(self, request: Request, task_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        wanted = parse_query(request, TaskEventsQuery).status
        rows = await db_call(lambda: store.task_events(self.host.db.pool, task_id, wanted))
        if not rows and wanted is None:
            raise NotFound(f"no events for task {task_id!r}")
        return self.reply(
            TaskEventsReply,
            {
                "task_id": task_id,
                "events": [
                    {
                        "event_id": str(r["event_id"]),
                        "event": r["event"],
                        "timestamp": iso(r["ts"]),
                        "status": r["status"],
                        "reason": r["reason"],
                        "late": r["late"],
                        "received_at": iso(r["received_at"]),
                    }
                    for r in rows
                ],
            },
        )


class UserTasks(JsonView):
    """The user's tasks, optionally only `?status=open|completed|deleted`."""

    async def get(self, request: Request, user_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        query = parse_query(request, UserTasksQuery)
        # Keyset: (creation time, id) of the last task shown; never created sorts first.
        created, after_id = decode_cursor(query.after, 2) if query.after else (None, None)
        rows = await db_call(
            lambda: store.user_tasks(
                self.host.db.pool, user_id, query.status, created, after_id, query.limit + 1
            )
        )
        more = len(rows) > query.limit
        shown = rows[: query.limit]
        last = shown[-1] if shown else None
        cursor = (
            encode_cursor(iso(last["created_at"]) or "-infinity", last["task_id"])
            if more and last is not None
            else None
        )
        return self.reply(
            UserTasksPage, {"user_id": user_id, "tasks": [task_json(r) for r in shown], "next": cursor}
        )


class Reports(JsonView):
    """Stored reports (latest revision of each interval) within [from, to)."""

    async def get(self, request: Request, user_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        start, end = time_range(request)
        rows = await db_call(lambda: store.user_reports(self.host.db.pool, user_id, start, end))
        reports = [
            {
                **json.loads(r["content"]),
                "revision": r["revision"],
                "generated_at": iso(r["computed_at"]),
            }
            for r in rows
        ]
        return self.reply(ReportsReply, {"user_id": user_id, "reports": reports})


class ReportSummary(JsonView):
    """A report computed now, for any range."""

    async def get(self, request: Request, user_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        start, end = time_range(request)
        if end - start > MAX_SUMMARY_RANGE:
            raise ValidationFailed("the range may be at most 366 days")

        async def transitions() -> Any:
            async with self.host.db.pool.acquire() as conn:
                return await store.user_transitions(conn, user_id)

        report = build_report(user_id, start, end, await db_call(transitions))
        return self.json(report.model_dump(mode="json"))


def register_task_views(app: Host, inbound: Topic) -> None:
    settings = app.settings.of(TasksSettings)
    app.route(
        "/tasks/webhook",
        tag="tasks",
        ingest=True,
        post=Operation(
            "A TODO-app task event (created, updated, deleted)",
            WEBHOOK_SECRET,
            {202: Reply("Accepted: durable in the topic", AcceptedOne)},
            body=TaskWebhook,
            errors=(DependencyUnavailable, TopicNotReady),
        ),
    )(bound(TasksWebhook, topic=inbound, settings=settings))
    app.route(
        "/tasks/{task_id}",
        tag="tasks",
        get=Operation(
            "A task's current state",
            READER,
            {200: Reply("The task", TaskReply)},
            errors=(NotFound, DependencyUnavailable),
        ),
    )(Task)
    app.route(
        "/tasks/{task_id}/events",
        tag="tasks",
        get=Operation(
            "Every event of a task, with what happened to it and why",
            READER,
            {200: Reply("Events in event-time order", TaskEventsReply)},
            query=TaskEventsQuery,
            errors=(NotFound, DependencyUnavailable),
        ),
    )(TaskEvents)
    app.route(
        "/users/{user_id}/tasks",
        tag="tasks",
        get=Operation(
            "A user's tasks, a page at a time",
            READER,
            {200: Reply("A page of the user's tasks", UserTasksPage)},
            query=UserTasksQuery,
            errors=(DependencyUnavailable,),
        ),
    )(UserTasks)
    app.route(
        "/reports/{user_id}",
        tag="tasks",
        get=Operation(
            "Stored reports (latest revision of each interval) within [from, to)",
            READER,
            {200: Reply("The reports", ReportsReply)},
            query=RangeQuery,
            errors=(DependencyUnavailable,),
        ),
    )(Reports)
    app.route(
        "/reports/{user_id}/summary",
        tag="tasks",
        get=Operation(
            "A report computed now, for any range up to 366 days",
            READER,
            {200: Reply("The report", ReportContent)},
            query=RangeQuery,
            errors=(DependencyUnavailable,),
        ),
    )(ReportSummary)
