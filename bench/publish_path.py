"""Micro-benchmark of the durable publish every webhook request and agent batch does.

    python -m bench.publish_path [--messages 4000] [--rounds 6] [--uvloop]

Against a fresh embedded broker, 64 concurrent tasks each publish a message and
wait for the broker's acknowledgement, over and over, in one process, with:

  topic.send     streamapp.publishing.publish_all as it is (faust Topic.send)
  producer.send  the bytes handed to the app's producer (the proposed change)
  topic.send, root logger at DEBUG
                 what faust.Worker's spinner does to the root logger when the level
                 is WARNING or above (handler still at WARNING)

The variants alternate within every round, so a machine shared with other work
slows them alike; the result is CPU microseconds of this process per message.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust

from bench.stack import Children, start_services
from simulator.records import Population
from streamapp.envelope import Envelope

Publish = Callable[[bytes, bytes], Awaitable[None]]
CONCURRENCY = 64


def build_app(broker: str, datadir: Path) -> tuple[faust.App, Any]:
    app = faust.App(
        f"bench-publish-{uuid.uuid4().hex[:8]}",
        broker=broker,
        autodiscover=False,
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=4,
        producer_linger=0.005,
        web_enabled=False,
    )
    topic = app.topic(f"bench.publish.{uuid.uuid4().hex[:8]}", key_type=bytes, value_type=bytes)
    return app, topic


async def drive(publish: Publish, messages: Sequence[tuple[bytes, bytes]]) -> float:
    """CPU seconds of this process to publish `messages` from CONCURRENCY tasks."""
    queue = list(messages)

    async def client() -> None:
        while queue:
            key, value = queue.pop()
            await publish(key, value)

    started = time.process_time()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return time.process_time() - started


async def measure(broker: str, datadir: Path, count: int, rounds: int) -> dict[str, float]:
    from streamapp.publishing import publish_all

    app, topic = build_app(broker, datadir)
    await topic.maybe_declare()
    producer = await app.maybe_start_producer()
    name = topic.get_topic_name()

    async def via_topic(key: bytes, value: bytes) -> None:
        await publish_all(topic, [(key, value)], timeout=10.0)

    async def via_producer(key: bytes, value: bytes) -> None:
        future = await producer.send(name, key, value, None, None, None)
        await future

    population = Population(5000, seed=3)
    messages = []
    for _ in range(count):
        customer = population.license_changing()
        envelope = Envelope(
            event_id=uuid.uuid4(),
            source="salesforce.json",
            key=customer.id,
            payload=customer.record(),
        )
        messages.append((customer.id.encode(), envelope.encode()))

    root = logging.getLogger()
    # Like the worker's stream handler at WARNING: debug records are built, then dropped.
    handler = logging.NullHandler(logging.WARNING)
    root.addHandler(handler)
    totals = {"topic.send": 0.0, "producer.send": 0.0, "topic.send, root logger at DEBUG": 0.0}
    try:
        await drive(via_topic, messages[: count // 4])  # warm-up: connections, metadata
        for _ in range(rounds):
            root.setLevel(logging.WARNING)
            totals["topic.send"] += await drive(via_topic, messages)
            totals["producer.send"] += await drive(via_producer, messages)
            root.setLevel(logging.DEBUG)
            totals["topic.send, root logger at DEBUG"] += await drive(via_topic, messages)
            root.setLevel(logging.WARNING)
    finally:
        root.removeHandler(handler)
        await producer.stop()
    return {name: seconds / (count * rounds) * 1e6 for name, seconds in totals.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.publish_path", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=4000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (must be installed)")
    args = parser.parse_args(argv)
    if args.uvloop:
        uvloop = importlib.import_module("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tmp = Path(tempfile.mkdtemp(prefix="streamapp-bench-publish-"))
    children = Children(log_dir=tmp)
    try:
        services = start_services(children, tmp / "data")
        result = asyncio.run(measure(services["STREAMAPP_BROKER_URL"], tmp, args.messages, args.rounds))
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"| publish + ack, {CONCURRENCY} concurrent, {loop} | CPU per message |")
    print("|---|---|")
    for name, micros in result.items():
        print(f"| {name} | {micros:.0f} us |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
