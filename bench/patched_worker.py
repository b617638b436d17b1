"""Experiment harness: `python -m streamapp worker` with candidate performance fixes applied.

The benchmark's `--worker-patches a,b` runs the worker through this module, so a
proposed change to streamapp/ can be measured before anyone edits streamapp/.
Each patch mirrors a diff proposed in the benchmark report; none is applied by
default, and a patch that no longer fits the code is skipped with a warning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

PATCHES_ENV = "BENCH_WORKER_PATCHES"


def quiet_logging() -> None:
    """cli.run_worker: `worker.spinner = None`.

    faust.Worker's terminal spinner sets the root logger to DEBUG whenever the log
    level is WARNING or higher (so it can spin on every record); our handler has
    no level of its own, so every debug line of faust, aiokafka and mode is built,
    formatted (reprs of whole produce requests) and written.
    """
    import faust.worker

    def no_spinner(self: faust.worker.Worker, logger: object, level: int) -> None:
        self.spinner = None

    setattr(faust.worker.Worker, "_setup_spinner_handler", no_spinner)  # noqa: B010


def uvloop_loop() -> None:
    """cli.run_worker: `asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())` first.

    Needs uvloop (a new dependency); Faust's consumer thread makes its own loop
    through the same policy, so both loops become uvloop.
    """
    import asyncio
    import importlib

    uvloop = importlib.import_module("uvloop")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def direct_producer() -> None:
    """ingest.publish_all: hand the bytes to the app's producer, not to `Topic.send`.

    Topic.send builds a PendingMessage and a FutureMessage, runs the codecs (raw
    here), the sensors and a delivery callback per message; for bytes we already
    encoded, the producer's `send` gives the same broker acknowledgement.
    """
    import asyncio
    from collections.abc import Sequence

    import streamapp.ingest as ingest
    from streamapp.errors import DependencyUnavailable
    from streamapp.typing import Topic

    async def publish_all(
        topic: Topic,
        messages: Sequence[tuple[bytes, bytes]],
        *,
        timeout: float,
    ) -> None:
        producer = topic.app.producer
        name = topic.get_topic_name()
        try:
            async with asyncio.timeout(timeout):
                futures = [await producer.send(name, key, value, None, None, None) for key, value in messages]
                for future in futures:
                    await future
        except TimeoutError as exc:
            raise DependencyUnavailable("the broker did not acknowledge the write in time") from exc
        except Exception as exc:
            ingest.log.warning("publish to %s failed: %r", name, exc)
            raise DependencyUnavailable(f"the broker refused the write: {exc!r}") from exc

    ingest.publish_all = publish_all


def cached_partitioner() -> None:
    """app.faust_options: `"producer_partitioner": CachedPartitioner()`.

    aiokafka's default partitioner runs a pure-Python murmur2 for every keyed
    message; our keys are a bounded set of customer ids, so memoise the hash.
    Same function, so the partitions (and co-partitioning with tables) do not change.
    """
    import functools
    from typing import Any

    from aiokafka.partitioner import DefaultPartitioner, murmur2

    import streamapp.app as app_module

    @functools.lru_cache(maxsize=1 << 16)
    def key_hash(key: bytes) -> int:
        return int(murmur2(key)) & 0x7FFFFFFF

    def partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        return all_partitions[key_hash(key) % len(all_partitions)]

    original = app_module.faust_options

    def faust_options(settings: Any) -> dict[str, Any]:
        return {**original(settings), "producer_partitioner": partitioner}

    app_module.faust_options = faust_options


PATCHES: dict[str, Callable[[], None]] = {
    "quiet-logging": quiet_logging,
    "uvloop": uvloop_loop,
    "direct-producer": direct_producer,
    "cached-partitioner": cached_partitioner,
}


def apply(names: list[str]) -> None:
    for name in names:
        try:
            PATCHES[name]()
            print(f"bench.patched_worker: applied {name}", file=sys.stderr)
        except Exception as exc:
            print(f"bench.patched_worker: could not apply {name}: {exc!r}", file=sys.stderr)


def main() -> int:
    names = [n for n in os.environ.get(PATCHES_ENV, "").split(",") if n]
    unknown = sorted(set(names) - set(PATCHES))
    if unknown:
        print(f"unknown patches {unknown}; known: {sorted(PATCHES)}", file=sys.stderr)
        return 2
    apply(names)
    from streamapp.cli import main as streamapp_main

    return streamapp_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
