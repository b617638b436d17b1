"""Tasks views: the TODO app's webhook, tasks and their events, users' tasks, reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response
from pydantic import SecretStr, ValidationError

from streamapp.auth import require_reader
from streamapp.config.tasks import TasksSettings
from streamapp.envelope import Envelope, utcnow
from streamapp.errors import NotFound, ValidationFailed
from streamapp.models.tasks import TaskFact, TaskWebhook
from streamapp.rules.tasks import build_report
from streamapp.services.tasks import user_transitions
from streamapp.typing import Topic, aiohttp_request
from streamapp.web.base import (
    JsonView,
    bound,
    db_call,
    latest_event_time,
    parse_json_object,
    validation_errors,
)
from streamapp.web.webhook import Accepted, Webhook

if TYPE_CHECKING:
    from streamapp.host import Host

STATUSES = ("open", "completed", "deleted")
MAX_SUMMARY_RANGE = timedelta(days=366)


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
    start = parse_time(request.query.get("from"), "from")
    end = parse_time(request.query.get("to"), "to")
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

    def shared_secret(self) -> SecretStr | None:
        return self.host.settings.of(TasksSettings).tasks_secret

    async def accept(self, request: Request, body: bytes) -> Accepted:
        data = parse_json_object(body)
        try:
            hook = TaskWebhook.model_validate(data)
        except ValidationError as exc:
            raise validation_errors(exc) from exc
        if hook.timestamp > latest_event_time(self.host.settings):
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
        )


class Task(JsonView):
    async def get(self, request: Request, task_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        row = await db_call(
            lambda: self.host.db.pool.fetchrow("SELECT * FROM tasks WHERE task_id = $1", task_id)
        )
        if row is None or row["status"] == "unknown":
            raise NotFound(f"unknown task {task_id!r}")
        return self.json(task_json(row))


class TaskEvents(JsonView):
    """Every event of the task in event-time order, with what happened to it and why."""

    async def get(self, request: Request, task_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        wanted = request.query.get("status")
        if wanted is not None and wanted not in ("applied", "rejected", "pending"):
            raise ValidationFailed("status must be applied, rejected or pending")
        rows = await db_call(
            lambda: self.host.db.pool.fetch(
                "SELECT * FROM task_events WHERE task_id = $1 AND ($2::text IS NULL OR status = $2)"
                " ORDER BY ts, event_id",
                task_id,
                wanted,
            )
        )
        if not rows and wanted is None:
            raise NotFound(f"no events for task {task_id!r}")
        return self.json(
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
            }
        )


class UserTasks(JsonView):
    """The user's tasks, optionally only `?status=open|completed|deleted`."""

    async def get(self, request: Request, user_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        wanted = request.query.get("status")
        if wanted is not None and wanted not in STATUSES:
            raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
        rows = await db_call(
            lambda: self.host.db.pool.fetch(
                "SELECT * FROM tasks WHERE user_id = $1 AND status <> 'unknown'"
                " AND ($2::text IS NULL OR status = $2) ORDER BY created_at, task_id",
                user_id,
                wanted,
            )
        )
        return self.json({"user_id": user_id, "tasks": [task_json(r) for r in rows]})


class Reports(JsonView):
    """Stored reports (latest revision of each interval) within [from, to)."""

    async def get(self, request: Request, user_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        start, end = time_range(request)
        rows = await db_call(
            lambda: self.host.db.pool.fetch(
                """
                SELECT DISTINCT ON (start_at) start_at, end_at, revision, content, computed_at
                FROM task_reports WHERE user_id = $1 AND start_at >= $2 AND end_at <= $3
                ORDER BY start_at, revision DESC
                """,
                user_id,
                start,
                end,
            )
        )
        reports = [
            {
                **json.loads(r["content"]),
                "revision": r["revision"],
                "generated_at": iso(r["computed_at"]),
            }
            for r in rows
        ]
        return self.json({"user_id": user_id, "reports": reports})


class ReportSummary(JsonView):
    """A report computed now, for any range."""

    async def get(self, request: Request, user_id: str) -> Response:
        require_reader(self.host, aiohttp_request(request))
        start, end = time_range(request)
        if end - start > MAX_SUMMARY_RANGE:
            raise ValidationFailed("the range may be at most 366 days")

        async def transitions() -> Any:
            async with self.host.db.pool.acquire() as conn:
                return await user_transitions(conn, user_id)

        report = build_report(user_id, start, end, await db_call(transitions))
        return self.json(report.model_dump(mode="json"))


def register_task_views(app: Host, inbound: Topic) -> None:
    app.ingest_page("/tasks/webhook")(bound(TasksWebhook, topic=inbound))
    app.page("/tasks/{task_id}")(Task)
    app.page("/tasks/{task_id}/events")(TaskEvents)
    app.page("/users/{user_id}/tasks")(UserTasks)
    app.page("/reports/{user_id}")(Reports)
    app.page("/reports/{user_id}/summary")(ReportSummary)
