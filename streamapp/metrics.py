"""Prometheus metrics of every process: the metric objects and the small helpers that move them.

The objects live in prometheus-client's default registry (which also carries the
process and GC collectors), created once per Python process: several apps in one
process (tests) share them, as Prometheus would see one process anyway. Faust's
own sensor metrics (`faust.sensors.prometheus`) go into the same registry under
the `faust_` prefix, so they never collide with ours (`streamapp_`).

The hot path is the batch runtime: it calls `observe_batch` once per batch, not
per event, with label children looked up once per agent.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# Seconds; webhooks answer in milliseconds, reads of PostgreSQL in tens of them.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BATCH_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# No `_created` series next to every counter and histogram: they double a scrape for nothing
# our alerts use. Process-wide, so set before any metric exists.
disable_created_metrics()  # type: ignore[no-untyped-call]

EVENTS_IN = Counter(
    "streamapp_events_in", "Events an agent took in, per applied batch", ["pipeline", "agent"]
)
EVENTS_OUT = Counter(
    "streamapp_events_out",
    "Events an agent applied (landed in PostgreSQL or output topics; dead letters not included)",
    ["pipeline", "agent"],
)
BATCH_SIZE = Histogram(
    "streamapp_batch_size", "Events per applied batch", ["pipeline", "agent"], buckets=BATCH_SIZE_BUCKETS
)
BATCH_DURATION = Histogram(
    "streamapp_batch_duration_seconds",
    "Time to plan and apply a batch (dead letters, PostgreSQL, outputs, table state)",
    ["pipeline", "agent"],
    buckets=BATCH_DURATION_BUCKETS,
)
DEAD_LETTERS = Counter(
    "streamapp_dead_letters", "Dead letters made durable, by pipeline and reason", ["pipeline", "reason"]
)
CONSUMER_LAG = Gauge(
    "streamapp_consumer_lag",
    "Events between the end offset and the committed offset, per partition this worker holds "
    "(computed at scrape time)",
    ["topic", "partition"],
)
HTTP_REQUESTS = Counter(
    "streamapp_http_requests",
    "HTTP requests answered, by route, method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "streamapp_http_request_duration_seconds",
    "HTTP request latency, by route and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_REQUESTS = Counter(
    "streamapp_grpc_requests", "gRPC calls answered, by method and status code", ["method", "code"]
)
GRPC_DURATION = Histogram(
    "streamapp_grpc_request_duration_seconds",
    "gRPC call latency, by method",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
DELIVERY_ATTEMPTS = Counter(
    "streamapp_delivery_attempts",
    "Delivery attempts recorded, by channel type and outcome (succeeded, retry, dead, disabled)",
    ["channel", "outcome"],
)


# The runtime's clock for batch durations.
clock = time.perf_counter


class _AgentSeries(NamedTuple):
    events_in: Any
    events_out: Any
    size: Any
    duration: Any


@functools.cache
def _agent_series(pipeline: str, agent: str) -> _AgentSeries:
    # `labels()` hashes and locks on every call: done once per agent, not once per batch.
    return _AgentSeries(
        EVENTS_IN.labels(pipeline, agent),
        EVENTS_OUT.labels(pipeline, agent),
        BATCH_SIZE.labels(pipeline, agent),
        BATCH_DURATION.labels(pipeline, agent),
    )


class Agent(Protocol):
    pipeline: str
    name: str


def observe_batch(agent: Agent, size: int, lettered: int, started: float) -> None:
    """A batch handled since `started` (`clock()`): `size` events in, `size - lettered` applied.

    Called once the batch is done, so a batch handed over again after a failure
    is counted once, when it finally lands.
    """
    series = _agent_series(agent.pipeline, agent.name)
    series.events_in.inc(size)
    series.events_out.inc(size - lettered)
    series.size.observe(size)
    series.duration.observe(clock() - started)


def count_dead_letter(pipeline: str, reason: str) -> None:
    DEAD_LETTERS.labels(pipeline, reason).inc()


def count_delivery_attempt(channel: str | None, outcome: str) -> None:
    DELIVERY_ATTEMPTS.labels(channel or "unknown", outcome).inc()


def observe_grpc(method: str, code: str, seconds: float) -> None:
    GRPC_REQUESTS.labels(method, code).inc()
    GRPC_DURATION.labels(method).observe(seconds)


def set_consumer_lag(rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace the lag series with `rows` (`lag.partition_lags`): partitions no longer held vanish."""
    CONSUMER_LAG.clear()
    for row in rows:
        if row["lag"] is not None:
            CONSUMER_LAG.labels(row["topic"], str(row["partition"])).set(row["lag"])


def exposition() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its Content-Type."""
    # The classic text format (names escaped to underscores): every Prometheus version reads it.
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4


@functools.cache
def faust_metrics() -> Any:
    """Faust's Prometheus sensor metrics, created once per process in our registry."""
    from faust.sensors.prometheus import FaustMetrics

    return FaustMetrics.create(REGISTRY, "faust")


def attach_faust_monitor(app: Any) -> None:
    """Make Faust's Prometheus monitor the app's monitor (it records what the default one does, and more).

    Not `setup_prometheus_sensors`: that also adds its own `/metrics` page, which
    would have none of our series and no access rule.
    """
    app.monitor = monitor_class()(metrics=faust_metrics())


@functools.cache
def monitor_class() -> Any:
    """Faust's Prometheus monitor, setting the end-offset gauge only when the end moves.

    Faust's fetch loop calls `track_tp_end_offset` for every record it hands over
    (`Consumer.getmany`) with the partition's high watermark, which changes once
    per fetch; the gauge's `labels()` lookup cost ~1.5 us per record (py-spy,
    bench.peers). The value recorded is the same.
    """
    from faust.sensors.prometheus import PrometheusMonitor

    class Monitor(PrometheusMonitor):
        def track_tp_end_offset(self, tp: Any, offset: int) -> None:
            if self.tp_end_offsets.get(tp) != offset:
                super().track_tp_end_offset(tp, offset)

    return Monitor
