"""OpenTelemetry for the carts server: a span per rpc and per SQL statement, exported over OTLP.

With no `STREAMAPP_CARTS_OTLP_ENDPOINT` the tracer is OpenTelemetry's no-op one,
so the instrumentation costs next to nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from mode import Service
from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from streamapp.config.carts import CartsSettings

log = logging.getLogger(__name__)
INSTRUMENTATION = "streamapp.carts"


class Tracing(Service):
    """Owns the tracer provider (and its exporter thread); `tracer` is valid before and after."""

    def __init__(self, settings: CartsSettings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._endpoint = settings.carts_otlp_endpoint
        self._service_name = settings.app_id
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()

    async def on_start(self) -> None:
        if self._endpoint is None:
            return
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Our own provider rather than the process-global one: it is started and
        # stopped with the service, and tests can run several apps in one process.
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: self._service_name}))
        exporter = OTLPSpanExporter(endpoint=self._endpoint, insecure=not self._endpoint.startswith("https"))
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self._provider = provider
        self.tracer = provider.get_tracer(INSTRUMENTATION)
        log.info("carts: exporting traces to %s", self._endpoint)

    async def on_stop(self) -> None:
        if self._provider is not None:
            provider, self._provider = self._provider, None
            self.tracer = trace.NoOpTracer()
            # shutdown() flushes the last spans: blocking network I/O.
            await asyncio.to_thread(provider.shutdown)
