"""Merchant agents: requests -> (cache or heuristic pool) -> results + deliveries; the client cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from faust.types import TableT

from streamapp.batching import for_each_batch
from streamapp.envelope import derived_id, utcnow
from streamapp.errors import describe
from streamapp.heuristics import HeuristicPool
from streamapp.ingest import publish_durably
from streamapp.models.merchants import MerchantResult, NormalizeRequest, description_key
from streamapp.outbound.models import DeliveryRequest
from streamapp.retry import retry_transient
from streamapp.sink import PostgresSink, event_position
from streamapp.tables.state import put_all
from streamapp.typing import Event, Stream, Topic

if TYPE_CHECKING:
    from streamapp.app import StreamApp

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


class NormalizeProcessor:
    """Answers requests from the result cache, or runs the heuristic in the process pool.

    Two stages, so that a cache hit never waits behind seconds of heuristics:
    `triage` (agent `merchants.normalize`) answers hits at once and forwards misses
    to `merchants.heavy`; `handle` (agent `merchants.heavy`) checks the cache again
    (an earlier batch may have answered the same description), runs the distinct
    uncached descriptions in parallel, one per pool process, and answers. As in the
    licenses agent, outputs are acknowledged before the cache is written.
    """

    def __init__(
        self, app: StreamApp, topics: MerchantTopics, cache: TableT[bytes, Any], pool: HeuristicPool
    ) -> None:
        self.app = app
        self.topics = topics
        self.cache = cache
        self.pool = pool

    async def run_triage(self, stream: Stream) -> None:
        await for_each_batch(stream, 500, 0.05, self.triage, "merchants.normalize")

    async def run(self, stream: Stream) -> None:
        batch = max(2, self.pool.processes * 2)
        await for_each_batch(stream, batch, 0.05, self.handle, "merchants.heavy")

    async def triage(self, events: Sequence[Event]) -> None:
        requests = await self._decode(events)
        answers = self._cached(requests)
        await self._answer([r for r in requests if r[2] in answers], answers, {}, cache_hit=True)
        misses = [(key, event.value) for event, _, key in requests if key not in answers]
        await publish_durably(self.app.settings, self.topics.heavy, misses)

    def _cached(self, requests: list[tuple[Event, NormalizeRequest, bytes]]) -> dict[bytes, str]:
        ttl = self.app.settings.merchant_cache_ttl
        now = time.time()
        answers: dict[bytes, str] = {}
        for _, _, key in requests:
            cached = self.cache.get(key)
            if cached is not None and now - float(cached["at"]) < ttl:
                answers[key] = str(cached["merchant"])
        return answers

    async def _decode(self, events: Sequence[Event]) -> list[tuple[Event, NormalizeRequest, bytes]]:
        requests: list[tuple[Event, NormalizeRequest, bytes]] = []
        for event in events:
            try:
                request = NormalizeRequest.model_validate_json(event.value)
            except Exception as exc:
                await self.app.dead_letters.send_event(
                    event, pipeline=PIPELINE, reason="invalid_request", detail=describe(exc)
                )
                continue
            requests.append((event, request, description_key(request.transaction.description).encode()))
        return requests

    async def handle(self, events: Sequence[Event]) -> None:
        now = time.time()
        requests = await self._decode(events)
        answers = self._cached(requests)
        hits = [item for item in requests if item[2] in answers]
        await self._answer(hits, answers, {}, cache_hit=True)
        misses = [item for item in requests if item[2] not in answers]
        to_run = {key: req.transaction.description for _, req, key in misses}
        computed = await asyncio.gather(*(self._identify(d) for d in to_run.values()), return_exceptions=True)
        failures: dict[bytes, BaseException] = {}
        for key, outcome in zip(to_run, computed, strict=True):
            if isinstance(outcome, BaseException):
                failures[key] = outcome
            else:
                answers[key] = outcome
        await self._answer(misses, answers, failures, cache_hit=False)
        writes: dict[bytes, tuple[Event, bytes, dict[str, Any]]] = {}
        for event, _, key in misses:
            if key in answers and key not in writes:
                writes[key] = (event, key, {"merchant": answers[key], "at": now})
        await put_all(self.app.settings, self.cache, list(writes.values()))

    async def _answer(
        self,
        requests: list[tuple[Event, NormalizeRequest, bytes]],
        answers: dict[bytes, str],
        failures: dict[bytes, BaseException],
        *,
        cache_hit: bool,
    ) -> None:
        """Publish results and deliveries for `requests` and wait until both are durable."""
        results: list[tuple[bytes, bytes]] = []
        deliveries: list[tuple[bytes, bytes]] = []
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
            results.append((str(request.request_id).encode(), result.model_dump_json().encode()))
            delivery = delivery_for(result)
            deliveries.append((delivery.endpoint_id.encode(), delivery.model_dump_json().encode()))
        await publish_durably(self.app.settings, self.topics.results, results)
        await publish_durably(self.app.settings, self.topics.deliveries, deliveries)

    async def _identify(self, description: str) -> str:
        settings = self.app.settings
        return await retry_transient(
            lambda: self.pool.identify(description),
            what="merchant heuristic",
            initial=settings.retry_initial_backoff,
            maximum=settings.retry_max_backoff,
            max_attempts=3,
        )


async def write_results(conn: asyncpg.Connection, results: Sequence[MerchantResult]) -> None:
    # Only a pending request changes: a redelivered result is a no-op.
    await conn.executemany(
        """
        UPDATE merchant_requests SET status = $2, merchant_name = $3, cache_hit = $4, error = $5,
            finished_at = $6
        WHERE request_id = $1 AND status = 'pending'
        """,
        [(r.request_id, r.status, r.merchant, r.cache_hit, r.error, r.finished_at) for r in results],
    )


def result_sink(app: StreamApp) -> PostgresSink[MerchantResult]:
    return PostgresSink(
        app,
        name="merchants.results-sink",
        pipeline=PIPELINE,
        decode=MerchantResult.model_validate_json,
        write=write_results,
    )
