"""Tasks end to end: a scripted history in, task state, rejected events and exact reports out."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg

from streamapp.db.migrate import apply_migrations, load_migrations
from streamapp.services.tasks import ReportService
from streamapp.settings import Settings
from tests.integration.conftest import REPORT_INTERVAL, Client
from tests.integration.stack import Services, Worker, eventually


def aligned_past_interval(seconds_ago: float) -> datetime:
    now = datetime.now(UTC).timestamp() - seconds_ago
    return datetime.fromtimestamp(math.floor(now / REPORT_INTERVAL) * REPORT_INTERVAL, UTC)


def hook(
    event: str, at: datetime, user: str, task: str, content: str = "", done: bool = False
) -> dict[str, Any]:
    return {
        "event": event,
        "timestamp": at.isoformat(),
        "metadata": {"userId": user, "id": task, "content": content, "isCompleted": done},
    }


async def post(client: Client, body: dict[str, Any] | bytes) -> tuple[int, Any]:
    status, payload, _ = await client.post("/tasks/webhook", body, secret=None)
    return status, payload


async def reports(client: Client, user: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    lo, hi = (when.isoformat().replace("+", "%2B") for when in (start, end))
    status, body = await client.get(f"/reports/{user}?from={lo}&to={hi}")
    assert status == 200, body
    result: list[dict[str, Any]] = body["reports"]
    return result


def ids(report: dict[str, Any], key: str) -> list[str]:
    return [t["id"] for t in report[key]]


async def test_scripted_history_reports_and_late_amendment(client: Client, worker: Worker) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    t1, t2, t3, t9 = (f"{user}-t{i}" for i in (1, 2, 3, 9))
    s = aligned_past_interval(20)

    def at(sec: float) -> datetime:
        return s + timedelta(seconds=sec)

    script = [
        hook("created", at(0.1), user, t1, "write report"),
        hook("created", at(0.1), user, t1, "write report"),  # redelivered
        hook("updated", at(0.5), user, t1, "write report", done=True),
        hook("deleted", at(0.8), user, t2, "tmp"),  # before its own created: out of order
        hook("created", at(0.2), user, t2, "tmp"),
        hook("created", at(0.3), user, t3, "call mum"),
        hook("created", at(0.9), user, t3, "call dad"),  # a second created: rejected
        hook("updated", at(0.4), user, t9, "orphan"),  # a task never created
    ]
    for body in script:
        status, answer = await post(client, body)
        assert status == 202
        assert answer["status"] == "accepted"

    # The interval closed before the events arrived, so the first revision may have
    # been computed from part of them; wait for the report of the whole script.
    first = await eventually(
        lambda: reports(client, user, s, s + timedelta(seconds=2)),
        lambda r: len(r) == 1 and r[0]["counts"] == {"created": 3, "completed": 1, "deleted": 1, "open": 1},
    )
    (report,) = first
    assert (
        ids(report, "created"),
        ids(report, "completed"),
        ids(report, "deleted"),
        ids(report, "open"),
    ) == (
        [t1, t2, t3],
        [t1],
        [t2],
        [t3],
    )
    assert report["counts"] == {"created": 3, "completed": 1, "deleted": 1, "open": 1}
    assert next(t for t in report["open"] if t["id"] == t3)["content"] == "call mum"

    # The same report as a JSON file, in the format existing consumers read.
    name = f"task_report_{user}_{s:%Y%m%dT%H%M%SZ}_{s + timedelta(seconds=2):%Y%m%dT%H%M%SZ}.json"
    path = worker.log_dir / "worker-data" / "reports" / name
    document = json.loads(path.read_text())
    assert (document["revision"], document["counts"]) == (report["revision"], report["counts"])

    # State and history of the tasks.
    status, task = await client.get(f"/tasks/{t1}")
    assert (status, task["status"], task["user_id"]) == (200, "completed", user)
    assert task["completed"] == at(0.5).isoformat()
    _, events = await client.get(f"/tasks/{t3}/events")
    assert [(e["event"], e["status"], e["reason"]) for e in events["events"]] == [
        ("created", "applied", None),
        ("created", "rejected", "duplicate_created"),
    ]
    _, events = await client.get(f"/tasks/{t2}/events")
    assert [(e["event"], e["status"], e["late"]) for e in events["events"]] == [
        ("created", "applied", True),
        ("deleted", "applied", False),
    ]
    assert len((await client.get(f"/tasks/{t1}/events"))[1]["events"]) == 2  # the redelivery added nothing
    assert (await client.get(f"/tasks/{t9}"))[0] == 404
    _, events = await client.get(f"/tasks/{t9}/events?status=pending")
    assert [(e["status"], e["reason"]) for e in events["events"]] == [("pending", "unknown_task")]
    _, listing = await client.get(f"/users/{user}/tasks?status=open")
    assert [t["id"] for t in listing["tasks"]] == [t3]
    _, listing = await client.get(f"/users/{user}/tasks")
    assert {t["id"] for t in listing["tasks"]} == {t1, t2, t3}

    # A late event inside the grace period amends the closed report: revision 2.
    assert (await post(client, hook("updated", at(1.5), user, t3, "call mum", done=True)))[0] == 202
    amended = await eventually(
        lambda: reports(client, user, s, s + timedelta(seconds=2)),
        lambda r: bool(r) and r[0]["revision"] > report["revision"],
    )
    assert amended[0]["revision"] == report["revision"] + 1
    assert ids(amended[0], "completed") == [t1, t3]
    assert ids(amended[0], "open") == []
    assert json.loads(path.read_text())["revision"] == amended[0]["revision"]

    # A summary for any range, computed on demand.
    lo, hi = (s - timedelta(hours=1)).isoformat(), (s + timedelta(hours=1)).isoformat()
    status, summary = await client.get(
        f"/reports/{user}/summary?from={lo.replace('+', '%2B')}&to={hi.replace('+', '%2B')}"
    )
    assert status == 200
    assert summary["counts"] == {"created": 3, "completed": 2, "deleted": 1, "open": 0}


async def test_bad_task_webhooks(client: Client) -> None:
    good = hook("created", datetime.now(UTC), "u", "t")
    for body, status, reason in (
        (b"{nope", 400, "malformed_body"),
        (b"[]", 400, "malformed_body"),
        ({**good, "event": "archived"}, 422, "validation_failed"),
        ({**good, "timestamp": "2026-03-01T12:00:00"}, 422, "validation_failed"),
        ({**good, "timestamp": "soon"}, 422, "validation_failed"),
        ({**good, "metadata": {"userId": "u"}}, 422, "validation_failed"),
        ({k: v for k, v in good.items() if k != "metadata"}, 422, "validation_failed"),
    ):
        got, answer = await post(client, body)
        assert (got, answer["error"]) == (status, reason), body
    _, answer = await post(client, {**good, "event": "archived"})
    assert answer["errors"][0]["field"] == "event"


async def test_bad_queries(client: Client) -> None:
    assert (await client.get("/users/u/tasks?status=lost"))[0] == 422
    assert (await client.get("/tasks/nope/events?status=odd"))[0] == 422
    assert (await client.get("/reports/u?from=2026-01-01T00:00:00%2B00:00"))[0] == 422
    assert (await client.get("/reports/u?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"))[0] == 422
    assert (await client.get("/reports/u/summary?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"))[
        0
    ] == 422
    assert (await client.get("/reports/u?from=2026-01-01T00:00:00&to=2026-01-02T00:00:00Z"))[0] == 422
    status, body = await client.get("/reports/nobody?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z")
    assert (status, body["reports"]) == (200, [])


async def test_reports_are_in_postgres(db: asyncpg.Pool, client: Client) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    s = aligned_past_interval(10)
    await post(client, hook("created", s + timedelta(seconds=0.5), user, f"{user}-x", "x"))
    row = await eventually(
        lambda: db.fetchrow("SELECT revision, content FROM task_reports WHERE user_id = $1", user),
        lambda r: r is not None,
    )
    assert row is not None
    assert json.loads(row["content"])["counts"]["created"] == 1


async def test_a_user_silent_after_the_interval_still_gets_its_report(
    services: Services, tmp_path: Path
) -> None:
    """found: reports were computed only for users who changed since the last tick (less a
    5 s margin), so a user active early in the still-open interval who then did nothing
    more never got that interval's report (the README's quick start waited in vain).

    A report service of our own, on a schema of its own (no worker writing reports
    beside it), with a 12 s interval: the worker's 2 s hides inside the margin.
    """
    interval = 12.0
    schema = f"quiet_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(services.database_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    pool = await asyncpg.create_pool(
        services.database_url, min_size=1, max_size=2, server_settings={"search_path": schema}
    )
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, load_migrations("tasks", "streamapp.stores.tasks.migrations"))
        settings = Settings(report_interval=interval, report_dir=tmp_path)
        app = SimpleNamespace(settings=settings, db=SimpleNamespace(pool=pool))
        service = ReportService(app)
        # Early in an interval: the user's one change.
        await asyncio.sleep(interval - time.time() % interval + 0.2)
        start = datetime.fromtimestamp(time.time() // interval * interval, UTC)
        now = datetime.now(UTC)
        await pool.execute(
            "INSERT INTO tasks (task_id, user_id, content, status, created_at, last_event_at, fact_count)"
            " VALUES ('t1', 'quiet', 'hello', 'open', $1, $1, 1)",
            now,
        )
        await pool.execute(
            "INSERT INTO task_transitions (task_id, seq, user_id, kind, at, content, event_id)"
            " VALUES ('t1', 1, 'quiet', 'created', $1, 'hello', $2)",
            now,
            uuid.uuid4(),
        )
        # A tick more than the margin after the change, while the interval is still open.
        await asyncio.sleep(max(0.0, start.timestamp() + interval - 1.0 - time.time()))
        assert await service.tick() == 0
        await asyncio.sleep(max(0.0, start.timestamp() + interval + 0.2 - time.time()))
        assert await service.tick() == 1
        content = await pool.fetchval("SELECT content FROM task_reports WHERE start_at = $1", start)
        assert [t["id"] for t in json.loads(content)["created"]] == ["t1"]
    finally:
        await pool.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
