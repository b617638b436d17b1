"""SIGKILL the worker while an unordered, duplicating sender streams task events: same reports."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import aiokafka
import asyncpg
from aiokafka import TopicPartition

from simulator.tasks import TaskScript, deliveries
from streamapp.envelope import Envelope
from streamapp.models.tasks import TaskFact, TaskWebhook, Transition
from streamapp.rules.tasks import ReportContent, build_report, fold, interval_of
from streamapp.stores.tasks import users_transitions
from tests.integration.conftest import REPORT_INTERVAL
from tests.integration.stack import Worker, eventually

EVENTS = 1500
SENDERS = 32


def expected_facts(events: list[dict[str, Any]]) -> dict[str, dict[str, TaskFact]]:
    """task -> event id -> fact, with every duplicate folded away."""
    by_task: dict[str, dict[str, TaskFact]] = defaultdict(dict)
    for body in events:
        hook = TaskWebhook.model_validate(body)
        fact = TaskFact(
            event_id=hook.event_id(),
            event=hook.event,
            ts=hook.timestamp,
            user_id=hook.metadata.user_id,
            content=hook.metadata.content,
            completed=hook.metadata.is_completed,
            received_at=datetime.now(UTC),
        )
        by_task[hook.metadata.id][str(fact.event_id)] = fact
    return by_task


def expected_transitions(by_task: dict[str, dict[str, TaskFact]]) -> dict[str, dict[str, list[Transition]]]:
    """user -> task -> its transitions, by the same pure fold the pipeline runs."""
    per_user: dict[str, dict[str, list[Transition]]] = defaultdict(dict)
    for task_id, facts in by_task.items():
        folded = fold(task_id, list(facts.values()))
        if folded.state.user_id is not None and folded.transitions:
            per_user[folded.state.user_id][task_id] = folded.transitions
    return per_user


def expected_reports(events: list[dict[str, Any]]) -> dict[tuple[str, datetime], ReportContent]:
    """What the events imply, by the same pure rules, with no broker or database in between."""
    by_task = expected_facts(events)
    per_user = expected_transitions(by_task)
    result = {}
    for user, tasks in per_user.items():
        for start in {interval_of(t.at, REPORT_INTERVAL)[0] for ts in tasks.values() for t in ts}:
            end = start + timedelta(seconds=REPORT_INTERVAL)
            result[(user, start)] = build_report(user, start, end, tasks)
    return result


async def diagnose(
    db: asyncpg.Pool,
    broker_url: str,
    events: list[dict[str, Any]],
    keys: list[tuple[str, datetime]],
    expected: dict[tuple[str, datetime], ReportContent],
    final: dict[tuple[str, datetime], ReportContent],
) -> str:
    """Where a wrong report went wrong: the task state in PostgreSQL, or the report made from it."""
    by_task = expected_facts(events)
    transitions = expected_transitions(by_task)
    lines = []
    async with db.acquire() as conn:
        for user, start in keys:
            stored = await users_transitions(conn, [user])
            lines.append(f"{user} @ {start:%H:%M:%S}: report expected {expected.get((user, start))}")
            lines.append(f"  got {final.get((user, start))}")
            for task_id, history in transitions[user].items():
                count = await conn.fetchval("SELECT fact_count FROM tasks WHERE task_id = $1", task_id)
                same = stored.get(user, {}).get(task_id) == history
                if not same or count != len(by_task[task_id]):
                    lines.append(
                        f"  task {task_id}: {count} facts stored of {len(by_task[task_id])}; "
                        f"transitions {'equal' if same else 'DIFFER'}"
                    )
    lines.append(await topic_census(broker_url, events))
    return "\n".join(lines)


async def topic_census(broker_url: str, events: list[dict[str, Any]]) -> str:
    """Is every distinct event in `tasks.events`, and how far did the worker's group commit?"""
    wanted = {TaskWebhook.model_validate(e).event_id() for e in events}
    servers = broker_url.removeprefix("kafka://")
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = "tasks.events"
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        seen: set[Any] = set()
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            for records in batch.values():
                seen.update(Envelope.decode(r.value).event_id for r in records if r.value)
        positions = {tp.partition: await consumer.position(tp) for tp in parts}
    finally:
        await consumer.stop()
    # The group's commits, read without joining it (Tansu rejects the admin client's OffsetFetch).
    reader = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=servers, group_id="streamapp", enable_auto_commit=False
    )
    await reader.start()
    try:
        group = {tp.partition: await reader.committed(tp) for tp in parts}
    finally:
        await reader.stop()
    return (
        f"{topic}: {len(wanted & seen)} of {len(wanted)} events in the topic; "
        f"end offsets { ({tp.partition: o for tp, o in ends.items()}) }, read to {positions}, "
        f"group committed {group}"
    )


async def test_sigkill_mid_stream_gives_identical_reports(worker: Worker, db: asyncpg.Pool) -> None:
    await worker.restart()  # keep the coverage of what it ran so far
    seed = random.randrange(2**32)
    script = TaskScript(users=20, seed=seed, start=datetime.now(UTC) - timedelta(seconds=90))
    events = [script.next_event(timedelta(milliseconds=40)) for _ in range(EVENTS)]
    sent_order = deliveries(events, random.Random(seed))
    expected = expected_reports(events)
    users = sorted({user for user, _ in expected})
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in sent_order:
        queue.put_nowait(json.dumps(body).encode())
    accepted = 0

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            body = queue.get_nowait()
            while True:
                try:
                    async with session.post(
                        f"{worker.url}/tasks/webhook", data=body, timeout=aiohttp.ClientTimeout(total=15)
                    ) as response:
                        await response.read()
                        if response.status == 202:
                            break
                        assert response.status >= 500, response.status
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
            accepted += 1

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(sender(session)) for _ in range(SENDERS)]
        while accepted < len(sent_order) * 0.4:
            await asyncio.sleep(0.05)
        worker.kill()
        killed_at = accepted
        await asyncio.sleep(1.0)
        worker.start()
        await asyncio.gather(*tasks)
    assert 0 < killed_at < len(sent_order)
    await worker.wait_ready()

    async def actual() -> dict[tuple[str, datetime], ReportContent]:
        rows = await db.fetch(
            """
            SELECT DISTINCT ON (user_id, start_at) user_id, start_at, content FROM task_reports
            WHERE user_id = ANY($1) ORDER BY user_id, start_at, revision DESC
            """,
            users,
        )
        return {(r["user_id"], r["start_at"]): ReportContent.model_validate_json(r["content"]) for r in rows}

    final = await eventually(actual, lambda got: got == expected, timeout=180, interval=1.0)
    # Summarised: pytest's own diff of two thousand reports takes minutes to compute.
    missing = sorted(k for k in expected if k not in final)
    wrong = sorted(k for k in expected if k in final and final[k] != expected[k])
    extra = sorted(k for k in final if k not in expected)
    assert (missing, wrong, extra) == ([], [], []), (
        f"{len(missing)} missing, {len(wrong)} different, {len(extra)} unexpected of {len(expected)}; "
        f"e.g. {(missing + wrong + extra)[:3]}\n"
        + await diagnose(db, worker.services.broker_url, events, [*missing, *wrong][:3], expected, final)
    )
    # Nothing lost or doubled: one row per distinct event, whatever was redelivered or
    # replayed. Waited for: an event that changes no report (a repeated update) may still
    # be on its way to PostgreSQL when the reports already match.
    distinct = list({TaskWebhook.model_validate(e).event_id() for e in events})

    async def rows() -> int:
        sql = "SELECT count(*) FROM task_events WHERE event_id = ANY($1::uuid[])"
        n: int = await db.fetchval(sql, distinct)
        return n

    assert await eventually(rows, lambda n: n == len(distinct), timeout=60) == len(distinct)
