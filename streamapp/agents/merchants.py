"""Merchant agents: requests -> (cache or heuristic pool) -> results + deliveries; the client cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faust.types import TableT

from streamapp.config.merchants import MerchantsSettings
from streamapp.envelope import derived_id, utcnow
from streamapp.errors import describe
from streamapp.models.merchants import ClientRecord, MerchantResult, NormalizeRequest, description_key
from streamapp.outbound.models import DeliveryRequest
from streamapp.retry import retry_transient
from streamapp.runtime.effects import Effects, Invalid, Output, StateWrite
from streamapp.runtime.runner import BatchRuntime
from streamapp.services.merchants import HeuristicPool
from streamapp.sink import PostgresSink, event_position
from streamapp.stores.merchants import write_results
from streamapp.typing import Event, Topic

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)
PIPELINE = "merchants"


def endpoint_id(client_id: str) -> str:
    return f"merchants:{client_id}"


@dataclass
class MerchantTopics:
    requests: Topic
    # Cache misses, keyed like `requests` (co-partitioned with the result cache).
    heavy: Topic
    results: Topic
    clients: Topic
    deliveries: Topic


def delivery_for(result: MerchantResult) -> DeliveryRequest:
    payload: dict[str, Any] = {
        "request_id": str(result.request_id),
        "status": result.status,
        "merchant": {"name": result.merchant} if result.merchant is not None else None,
    }
    return DeliveryRequest(
        delivery_id=derived_id("merchants.delivery", str(result.request_id)),
        pipeline=PIPELINE,
        subject_id=str(result.request_id),
        owner=result.client_id,
        endpoint_id=endpoint_id(result.client_id),
        payload=payload,
    )


class Triage:
    """Agent `merchants.normalize`: answers cache hits at once, forwards misses to `merchants.heavy`.

    Two stages, so that a cache hit never waits behind seconds of heuristics.
    """

    name = "merchants.normalize"
    pipeline = PIPELINE
    batch_size = 500
    batch_within = 0.05

    def __init__(self, app: Host, topics: MerchantTopics, cache: TableT[bytes, Any]) -> None:
        self.app = app
        self.topics = topics
        self.cache = cache
        self.runtime: BatchRuntime[Any] = BatchRuntime(app, self)

    def plan(self, events: Sequence[Event]) -> Effects[Any]:
        effects: Effects[Any] = Effects()
        requests = decode_requests(events, effects)
        answers = cached(self.cache, requests, self.app.settings.of(MerchantsSettings).merchant_cache_ttl)
        hits = [r for r in requests if r[2] in answers]
        effects.outputs += answer(self.topics, hits, answers, {}, cache_hit=True)
        heavy = self.topics.heavy.get_topic_name()
        effects.outputs += [
            Output(heavy, key, event.value) for event, _, key in requests if key not in answers
        ]
        return effects


class Heavy:
    """Agent `merchants.heuristic`: runs the heuristic for cache misses in the process pool, then answers.

    The cache is checked again (an earlier batch may have answered the same
    description); the distinct uncached descriptions run in parallel, one per
    pool process, in the runtime's `prepare` step (the only I/O before `plan`).
    The runtime acknowledges the answers before it writes the cache.
    """

    name = "merchants.heuristic"
    pipeline = PIPELINE
    batch_within = 0.05
    # Concurrent actors share the partitions' events, and requests are independent:
    # no per-partition offset order to keep.
    contiguous = False

    def __init__(
        self, app: Host, topics: MerchantTopics, cache: TableT[bytes, Any], pool: HeuristicPool
    ) -> None:
        self.app = app
        self.topics = topics
        self.cache = cache
        self.pool = pool
        self.batch_size = max(2, pool.processes * 2)
        # What `prepare` found for a batch, by the identity of the batch's list (the
        # runtime hands `plan` the very list it gave `prepare`). Several actors share
        # this processor, so per batch, never one shared answer set.
        self._prepared: dict[int, tuple[dict[bytes, str], dict[bytes, BaseException], float]] = {}
        self.runtime: BatchRuntime[Any] = BatchRuntime(app, self, table=cache, prepare=self.prepare)

    async def prepare(self, events: Sequence[Event]) -> None:
        now = time.time()
        requests = decode_requests(events, Effects())
        answers = cached(self.cache, requests, self.app.settings.of(MerchantsSettings).merchant_cache_ttl)
        to_run = {key: req.transaction.description for _, req, key in requests if key not in answers}
        computed = await asyncio.gather(*(self._identify(d) for d in to_run.values()), return_exceptions=True)
        failures: dict[bytes, BaseException] = {}
        for key, outcome in zip(to_run, computed, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                failures[key] = outcome
            else:
                answers[key] = outcome
        self._prepared[id(events)] = (answers, failures, now)

    def plan(self, events: Sequence[Event]) -> Effects[Any]:
        answers, failures, now = self._prepared.pop(id(events))
        effects: Effects[Any] = Effects()
        requests = decode_requests(events, effects)
        fresh = cached(self.cache, requests, self.app.settings.of(MerchantsSettings).merchant_cache_ttl)
        hits = [item for item in requests if item[2] in fresh]
        effects.outputs += answer(self.topics, hits, answers, {}, cache_hit=True)
        misses = [item for item in requests if item[2] not in fresh]
        effects.outputs += answer(self.topics, misses, answers, failures, cache_hit=False)
        written: set[bytes] = set()
        for event, _, key in misses:
            if key in answers and key not in written:
                written.add(key)
                state = {"merchant": answers[key], "at": now}
                effects.state.append(StateWrite(key, state, event.message.partition))
        return effects

    async def _identify(self, description: str) -> str:
        settings = self.app.settings.of(MerchantsSettings)
        return await retry_transient(
            lambda: self.pool.identify(description),
            what="merchant heuristic",
            initial=settings.retry_initial_backoff,
            maximum=settings.retry_max_backoff,
            max_attempts=3,
        )


class ClientUpdates:
    """Agent `merchants.client-cache`: API client records into the global client cache."""

    name = "merchants.client-cache"
    pipeline = PIPELINE
    batch_size = 500
    batch_within = 0.05

    def __init__(self, app: Host, cache: TableT[bytes, Any]) -> None:
        self.runtime: BatchRuntime[Any] = BatchRuntime(app, self, table=cache)

    def plan(self, events: Sequence[Event]) -> Effects[Any]:
        effects: Effects[Any] = Effects()
        for event in events:
            try:
                record = ClientRecord.model_validate_json(event.value).model_dump()
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc)))
                continue
            effects.state.append(StateWrite(event.key, record, event.message.partition))
        return effects


Request = tuple[Event, NormalizeRequest, bytes]


def decode_requests(events: Sequence[Event], effects: Effects[Any]) -> list[Request]:
    """The requests of `events` with their description keys; the rest refused in `effects`."""
    requests: list[Request] = []
    for event in events:
        try:
            request = NormalizeRequest.model_validate_json(event.value)
        except Exception as exc:
            effects.invalid.append(Invalid(event, describe(exc)))
            continue
        requests.append((event, request, description_key(request.transaction.description).encode()))
    return requests


def cached(cache: TableT[bytes, Any], requests: list[Request], ttl: float) -> dict[bytes, str]:
    now = time.time()
    answers: dict[bytes, str] = {}
    for _, _, key in requests:
        entry = cache.get(key)
        if entry is not None and now - float(entry["at"]) < ttl:
            answers[key] = str(entry["merchant"])
    return answers


def answer(
    topics: MerchantTopics,
    requests: list[Request],
    answers: dict[bytes, str],
    failures: dict[bytes, BaseException],
    *,
    cache_hit: bool,
) -> list[Output]:
    """A result and a delivery for each of `requests`."""
    results, deliveries = topics.results.get_topic_name(), topics.deliveries.get_topic_name()
    outputs: list[Output] = []
    for event, request, key in requests:
        failure = failures.get(key)
        result = MerchantResult(
            request_id=request.request_id,
            client_id=request.client_id,
            status="failed" if failure else "done",
            merchant=None if failure else answers[key],
            cache_hit=cache_hit,
            finished_at=utcnow(),
            error=describe(failure) if failure else None,
        )
        if failure is not None:
            log.error(
                "merchants: heuristic failed for %s: %s",
                event_position(event),
                describe(failure),
                extra={"position": event_position(event), "event_id": str(request.request_id)},
            )
        outputs.append(Output(results, str(request.request_id).encode(), result.model_dump_json().encode()))
        delivery = delivery_for(result)
        outputs.append(Output(deliveries, delivery.endpoint_id.encode(), delivery.model_dump_json().encode()))
    return outputs


def result_sink(app: Host) -> PostgresSink[MerchantResult]:
    return PostgresSink(
        app,
        name="merchants.results-sink",
        pipeline=PIPELINE,
        decode=MerchantResult.model_validate_json,
        write=write_results,
    )
