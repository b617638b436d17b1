"""`streamapp dead-letters list|replay`: read the dead-letter topic and re-inject originals."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamapp.deadletters import DEAD_LETTER_TOPIC, DeadLetter
from streamapp.kafka_security import aiokafka_security
from streamapp.settings import Settings


def bootstrap(broker_url: str) -> list[str]:
    """`kafka://h1:9092;h2:9092` (Faust's form) -> aiokafka's list of host:port."""
    servers: list[str] = []
    for part in broker_url.replace(",", ";").split(";"):
        part = part.strip()
        if part:
            servers.append(part.split("://", 1)[-1])
    return servers


async def read_dead_letters(settings: Settings) -> AsyncIterator[tuple[int, int, DeadLetter]]:
    """Every dead letter from the beginning to the current end, with partition and offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap(settings.kafka_url),
        enable_auto_commit=False,
        **aiokafka_security(settings),
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC) or set()
        tps = [TopicPartition(DEAD_LETTER_TOPIC, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp: end[tp] for tp in tps if end[tp] > 0}
        for tp in remaining:
            if await consumer.position(tp) >= remaining[tp]:
                remaining = {k: v for k, v in remaining.items() if k != tp}
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.value is not None:
                        yield tp.partition, record.offset, DeadLetter.decode(record.value)
                if tp in remaining and await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
    finally:
        await consumer.stop()


def _matches(letter: DeadLetter, args: argparse.Namespace) -> bool:
    if args.pipeline and letter.pipeline != args.pipeline:
        return False
    if args.reason and letter.reason != args.reason:
        return False
    return not (args.ids and str(letter.dead_letter_id) not in args.ids)


async def list_letters(settings: Settings, args: argparse.Namespace) -> int:
    shown = 0
    async for partition, offset, letter in read_dead_letters(settings):
        if not _matches(letter, args):
            continue
        if args.json:
            print(
                json.dumps(
                    {
                        "dlq_partition": partition,
                        "dlq_offset": offset,
                        **letter.model_dump(mode="json"),
                    }
                )
            )
        else:
            print(
                f"{letter.dead_letter_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  "
                f"{letter.pipeline:<10} {letter.reason:<16} {letter.position:<32} "
                f"event={letter.event_id or '-'}  {letter.detail[:120]}"
            )
        shown += 1
        if shown >= args.limit:
            break
    if not args.json:
        print(f"{shown} dead letter(s)")
    return 0


async def replay_letters(settings: Settings, args: argparse.Namespace) -> int:
    """Send each matching letter's original key and bytes back to its topic.

    Replaying twice is harmless: the pipelines recognise events by their ids.
    """
    chosen = [letter async for _, _, letter in read_dead_letters(settings) if _matches(letter, args)]
    if args.dry_run:
        for letter in chosen:
            print(f"would replay {letter.dead_letter_id} -> {letter.replay_topic}")
        print(f"{len(chosen)} dead letter(s) would be replayed")
        return 0
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap(settings.kafka_url), acks="all", **aiokafka_security(settings)
    )
    await producer.start()
    try:
        for letter in chosen:
            await producer.send_and_wait(
                letter.replay_topic,
                key=letter.key,
                value=letter.value,
                headers=[("streamapp-replay-of", str(letter.dead_letter_id).encode())],
            )
            print(f"replayed {letter.dead_letter_id} -> {letter.replay_topic}")
    finally:
        await producer.stop()
    print(f"{len(chosen)} dead letter(s) replayed")
    return 0
