"""Durable publishing: return only once the broker acknowledged every write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, NamedTuple, Protocol

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from streamapp.errors import DependencyUnavailable, PayloadTooLarge, is_retriable, unwrap
from streamapp.retry import retry_transient
from streamapp.settings import Settings
from streamapp.typing import Topic

log = logging.getLogger(__name__)


class Gate(Protocol):
    """Readiness (streamapp/readiness.py): GET /ready's report, and the gate events wait at."""

    async def report(self) -> tuple[bool, dict[str, Any]]: ...

    async def require_topic(self, name: str) -> None: ...


class Output(NamedTuple):
    """One message for a topic. `partition` None: the key decides.

    A named tuple, not a frozen dataclass: plans make one or two per record, and a
    frozen dataclass's `__init__` (an `object.__setattr__` per field) costs ~0.3 us more.
    """

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None


async def publish_durably(
    settings: Settings,
    topic: Topic,
    messages: Sequence[tuple[bytes, bytes]],
    *,
    partitions: Sequence[int] | None = None,
) -> None:
    """`publish_all` for agents: retry a broker that does not acknowledge, for as long as it takes.

    An agent must not move on (and have its input acknowledged) before its
    outputs are durable, so there is no giving up here; shutdown cancels it.
    """
    if not messages:
        return
    await retry_transient(
        lambda: publish_all(topic, messages, timeout=settings.ingest_ack_timeout, partitions=partitions),
        what=f"publish {len(messages)} to {topic.get_topic_name()}",
        initial=settings.retry_initial_backoff,
        maximum=settings.retry_max_backoff,
    )


async def publish_all(
    topic: Topic,
    messages: Sequence[tuple[bytes, bytes]],
    *,
    timeout: float,
    partitions: Sequence[int] | None = None,
) -> None:
    """Send (key, value) pairs to `topic` and wait for the broker's acknowledgement of all of them.

    Each pair goes to the partition of its key unless `partitions` names one per pair.
    """
    name = topic.get_topic_name()
    readiness: Gate | None = getattr(topic.app, "readiness", None)
    if readiness is not None:
        # Never the first write to a missing topic: the broker would auto-create it
        # with its own default partition count (streamapp/readiness.py).
        await readiness.require_topic(name)
    chosen = partitions if partitions is not None else [None] * len(messages)
    outputs = [Output(name, key, value, p) for (key, value), p in zip(messages, chosen, strict=True)]
    await send_all(topic.app.producer, outputs, timeout=timeout)


async def send_all(producer: Any, outputs: Sequence[Output], *, timeout: float) -> None:
    """Send every output (to any topics), then wait once for all the acknowledgements.

    Raises `DependencyUnavailable` (503, retriable) when the broker does not
    acknowledge in time: the caller is told to retry, and anything that did land
    is recognised downstream by its event id. A message the broker can never take
    raises `PayloadTooLarge` (413, permanent); other permanent errors pass as they are.
    """
    if not outputs:
        return

    async def send() -> None:
        # The values are bytes already: hand them to the producer. Topic.send would add
        # a FutureMessage, codecs, sensors and a callback per message (118 vs 47 us of
        # CPU each, bench/publish_path.py); partitioning is the same (by key).
        send = producer.send
        futures = [await send(o.topic, o.key, o.value, o.partition, None, None) for o in outputs]
        await asyncio.gather(*futures)

    await acknowledged(send(), len(outputs), timeout=timeout)


async def acknowledged(sending: Awaitable[None], count: int, *, timeout: float) -> None:
    """Await `sending` (it sends `count` messages and waits for their acks); errors as in `send_all`."""
    try:
        async with asyncio.timeout(timeout):
            await sending
    except TimeoutError as exc:
        raise DependencyUnavailable("the broker did not acknowledge the write in time") from exc
    except Exception as exc:
        if isinstance(unwrap(exc), (MessageSizeTooLargeError, RecordTooLargeError)):
            # Permanent: the same message will never fit. A 413 to a sender; a dead
            # letter in an agent. It used to become a 503, retried forever.
            raise PayloadTooLarge("a message is larger than the broker takes") from exc
        if not is_retriable(exc):
            raise
        log.warning("publish of %d messages failed: %r", count, exc)
        raise DependencyUnavailable(f"the broker did not take the write: {type(exc).__name__}") from exc
