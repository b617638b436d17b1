"""`streamapp dead-letters list|replay`: read the dead-letter topic and re-inject originals."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamapp.compat import refresh_metadata
from streamapp.deadletters import DEAD_LETTER_TOPIC, DeadLetter, PayloadFetcher
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
    """Every dead letter from the beginning to the current end, with partition and offset.

    A letter sent twice (a batch narrowed down, or replayed after a crash, before
    its ack) has one id: only its first copy is yielded.
    """
    reader = DeadLetterReader(settings)
    try:
        async for item in reader.read_new():
            yield item
    finally:
        await reader.close()


class DeadLetterReader:
    """Reads the dead-letter topic on from where it stopped, each letter id once.

    The CLI reads once from the beginning (`read_dead_letters`); the dashboard
    keeps a reader and each refresh reads only the letters that arrived since.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._seen: set[uuid.UUID] = set()
        # The next offset to read per partition (partitions appear when the topic is created).
        self._positions: dict[TopicPartition, int] = {}

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap(self.settings.kafka_url),
                enable_auto_commit=False,
                **aiokafka_security(self.settings),
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()  # a start that fails (no broker) has opened connections to close
                raise
            self._consumer = consumer
        return self._consumer

    async def _assigned(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC) or set()
        if not partitions:
            # A consumer that has not subscribed learns of a new topic only from fresh metadata.
            await refresh_metadata(consumer)
            partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC) or set()
        tps = [TopicPartition(DEAD_LETTER_TOPIC, p) for p in sorted(partitions)]
        if set(tps) != consumer.assignment():
            consumer.assign(tps)  # assigning anew forgets positions: seek back to ours
            for tp in tps:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
        return tps

    async def read_new(self) -> AsyncIterator[tuple[int, int, DeadLetter]]:
        """The letters from where the last call stopped to the current end."""
        consumer = await self._started()
        tps = await self._assigned(consumer)
        if not tps:
            return
        end = await consumer.end_offsets(tps)
        remaining = {tp: end[tp] for tp in tps if end[tp] > await consumer.position(tp)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    self._positions[tp] = record.offset + 1
                    if record.value is None:
                        continue
                    letter = DeadLetter.decode(record.value)
                    if letter.dead_letter_id in self._seen:
                        continue
                    self._seen.add(letter.dead_letter_id)
                    yield tp.partition, record.offset, letter
                # A fetch returns whole batches: past the end the embedded broker lists
                # (its last batch's base offset + 1) the batch's later records come too.
                if tp in remaining and await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]


def matches(
    letter: DeadLetter,
    *,
    pipeline: str | None = None,
    reason: str | None = None,
    ids: Collection[str] | None = None,
) -> bool:
    """The CLI's (and the dashboard's) filter: every given criterion must hold."""
    if pipeline and letter.pipeline != pipeline:
        return False
    if reason and letter.reason != reason:
        return False
    return not (ids and str(letter.dead_letter_id) not in ids)


def _matches(letter: DeadLetter, args: argparse.Namespace) -> bool:
    return matches(letter, pipeline=args.pipeline, reason=args.reason, ids=args.ids)


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
            stored = "[bytes in PostgreSQL] " if letter.payload_in_postgres else ""
            print(
                f"{letter.dead_letter_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  "
                f"{letter.pipeline:<10} {letter.reason:<16} {letter.position:<32} "
                f"event={letter.event_id or '-'}  {stored}{letter.detail[:120]}"
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
    await replay(
        settings, chosen, on_sent=lambda sent: print(f"replayed {sent.dead_letter_id} -> {sent.replay_topic}")
    )
    print(f"{len(chosen)} dead letter(s) replayed")
    return 0


async def replay(
    settings: Settings, letters: Sequence[DeadLetter], on_sent: Callable[[DeadLetter], None] | None = None
) -> None:
    """Send each letter's original key and bytes to its replay topic, acknowledged by the broker.

    Each replayed record carries a `streamapp-replay-of` header naming its letter.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap(settings.kafka_url),
        acks="all",
        max_request_size=settings.producer_max_request_bytes,
        **aiokafka_security(settings),
    )
    pool = await _payload_pool(settings, letters)
    await producer.start()
    try:
        for letter in letters:
            key, value = await letter.original(pool and _fetcher(pool))
            await producer.send_and_wait(
                letter.replay_topic,
                key=key,
                value=value,
                headers=[("streamapp-replay-of", str(letter.dead_letter_id).encode())],
            )
            if on_sent is not None:
                on_sent(letter)
    finally:
        await producer.stop()
        if pool is not None:
            await pool.close()


async def _payload_pool(settings: Settings, letters: Sequence[DeadLetter]) -> asyncpg.Pool | None:
    """A small pool to read payloads kept in PostgreSQL, only when a chosen letter has one."""
    if not any(letter.payload_in_postgres for letter in letters):
        return None
    pool: asyncpg.Pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=0, max_size=1)
    return pool


def _fetcher(pool: asyncpg.Pool) -> PayloadFetcher:
    async def fetch(dead_letter_id: uuid.UUID) -> tuple[bytes | None, bytes]:
        row = await pool.fetchrow(
            "SELECT key, value FROM dead_letter_payloads WHERE dead_letter_id = $1", dead_letter_id
        )
        if row is None:
            raise LookupError(f"dead letter {dead_letter_id}: its payload is not in dead_letter_payloads")
        return row["key"], row["value"]

    return fetch
