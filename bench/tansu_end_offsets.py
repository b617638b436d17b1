"""Minimal reproduction for the Tansu report (docs/upstream/tansu-end-offsets.md): ListOffsets(LATEST)
after multi-record batches.

    python -m bench.tansu_end_offsets --bootstrap 127.0.0.1:9092
    python -m bench.tansu_end_offsets --tansu /path/to/tansu   # starts one (memory storage) itself

Needs only aiokafka. For each case it creates a one-partition topic, produces
the given batches (records sent together within the producer's linger travel
as one batch), then prints what ListOffsets(LATEST) answers, the high watermark
of a fetch after reading every record, and the records' true end. Exit code 1
when ListOffsets disagrees with the records in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

CASES: list[list[int]] = [[1, 1, 1], [5], [5, 5], [10, 1, 5], [1000]]


async def produce(bootstrap: str, topic: str, batches: list[int]) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    offsets: list[int] = []
    try:
        for size in batches:
            futures = [await producer.send(topic, b"x", partition=0) for _ in range(size)]
            offsets += [(await future).offset for future in futures]
    finally:
        await producer.stop()
    return offsets


async def ends(bootstrap: str, tp: TopicPartition) -> tuple[int, int | None, int]:
    """(ListOffsets LATEST, the fetch's high watermark, records read)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        listed = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        read = 0
        while records := (await consumer.getmany(tp, timeout_ms=1000)).get(tp):
            read += len(records)
        return listed, consumer.highwater(tp), read
    finally:
        await consumer.stop()


async def reproduce(bootstrap: str) -> int:
    print("| batches produced | record offsets | ListOffsets(LATEST) | fetch high watermark | records read |")
    print("|---|---|---|---|---|")
    wrong = 0
    for batches in CASES:
        topic = f"end-offsets-{uuid.uuid4().hex[:8]}"
        offsets = await produce(bootstrap, topic, batches)
        listed, highwater, read = await ends(bootstrap, TopicPartition(topic, 0))
        true_end = offsets[-1] + 1
        wrong += listed != true_end
        print(
            f"| {batches} | {offsets[0]}-{offsets[-1]} | {listed}{'' if listed == true_end else ' (wrong)'} "
            f"| {highwater} | {read} |"
        )
    print(f"\nListOffsets(LATEST) wrong in {wrong} of {len(CASES)} cases")
    return 1 if wrong else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def tansu(binary: str) -> Iterator[str]:
    """A Tansu broker with memory storage on a free port, for the length of the block."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = subprocess.Popen([*argv, "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("tansu did not start")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tansu_end_offsets", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap", help="host:port of a running broker")
    where.add_argument("--tansu", help="a tansu binary to start (memory storage, a free port)")
    args = parser.parse_args(argv)
    if args.bootstrap:
        return asyncio.run(reproduce(args.bootstrap))
    with tansu(args.tansu) as bootstrap:
        return asyncio.run(reproduce(bootstrap))


if __name__ == "__main__":
    sys.exit(main())
