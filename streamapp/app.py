"""The app factory: one Faust app with the core services, the core views and every pipeline."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import faust
from aiokafka.partitioner import DefaultPartitioner, murmur2
from mode import ServiceT

from streamapp.activity import RecentEvents
from streamapp.auth import Authenticator, Kind
from streamapp.compat import (
    use_batched_drain,
    use_durable_store,
    use_fetched_end_offsets,
    use_keep_local_state_recovery,
    use_waking_fetch,
)
from streamapp.db.migrate import Migration, pipeline_migrations
from streamapp.db.pool import Database
from streamapp.deadletters import DeadLetters
from streamapp.gaps import StreamGapHealer
from streamapp.host import Agent, Provision, Role
from streamapp.kafka_security import broker_credentials
from streamapp.metrics import attach_faust_monitor
from streamapp.pipeline import Pipeline, discover_pipelines
from streamapp.readiness import Readiness
from streamapp.routes import Method, Operation, Route, check_view
from streamapp.settings import Settings
from streamapp.typing import Stream, Topic

if TYPE_CHECKING:
    from streamapp.web.dashboard import Dashboard

_DEFAULT_PARTITIONER = DefaultPartitioner()
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
T = TypeVar("T")

__all__ = ["Role", "StreamApp", "create_app", "faust_options", "key_partitioner"]


class StreamApp(faust.App):
    """A Faust app that also carries the settings and the resources the pipelines share.

    Complete when constructed: the core services and views, then every pipeline's
    `register`, all run in `__init__` (streamapp.host.Host is what they may use).
    """

    # What the dashboard's routes share (streamapp/web/dashboard.py sets it while the app is built).
    dashboard: Dashboard
    # Set while `streamapp dev` stops: webhook routes answer 503 + Retry-After.
    draining: bool = False

    def __init__(
        self, settings: Settings, pipelines: Sequence[Pipeline] | None = None, *, role: Role = "worker"
    ) -> None:
        chosen = list(pipelines) if pipelines is not None else discover_pipelines()
        for pipeline in chosen:
            if pipeline.settings is not None:
                # Each pipeline's settings checked now, not at its first request.
                settings.of(pipeline.settings)
        # Read by Faust while it builds its services (_new_web), so set first.
        self.role: Role = role
        self.settings: Settings = settings
        super().__init__(settings.app_id, **faust_options(settings, role))
        # Faust's producer-only boot: web server and producer, no consumer, agents or tables.
        self.producer_only = role == "ingest"
        self.ingest_paths: set[str] = set()
        # Every route, declared with who may call it and what it takes and answers (OpenAPI).
        self.routes: dict[str, Route] = {}
        # Every topic the app writes or reads, by name (streamapp/topics.py fills it).
        self.declared_topics: dict[str, Topic] = {}
        # GET /ready, and the gate that refuses events until their topics exist.
        self.readiness = Readiness(self)
        self.pipelines: list[Pipeline] = chosen
        self.authenticators: list[Authenticator] = []
        # Which kind of principal owns the deliveries a pipeline makes (pipeline name -> kind).
        self.delivery_owner_kinds: dict[str, Kind] = {}
        self._provisions: dict[str, object] = {}
        migrations: list[Migration] = pipeline_migrations(chosen)
        self.db = Database(
            settings.postgres_dsn,
            # Off when a deploy step applies them (`streamapp migrate`).
            migrations=migrations if settings.migrate_on_start else [],
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            connect_timeout=settings.db_connect_timeout,
        )
        self.dead_letters = DeadLetters(self)
        # A sample of the events the agents handled lately (the dashboard's live feed).
        self.recent_events = RecentEvents()
        self.declared_topics[self.dead_letters.topic.get_topic_name()] = self.dead_letters.topic
        attach_faust_monitor(self)
        self.add_worker_service(
            StreamGapHealer(self, interval=settings.gap_check_interval, patience=settings.gap_patience)
        )
        self.task(self.declare_topics)

        from streamapp.web.core import register_core_views
        from streamapp.web.dashboard import register_dashboard_views
        from streamapp.web.dead_letters import register_dead_letter_views
        from streamapp.web.docs import register_docs_views
        from streamapp.web.metrics import register_metrics_view

        register_core_views(self)
        register_metrics_view(self)
        register_docs_views(self)
        register_dashboard_views(self)
        register_dead_letter_views(self)
        for pipeline in chosen:
            pipeline.register(self)
        if role == "worker":
            use_keep_local_state_recovery(self)

    async def declare_topics(self) -> None:
        # Faust creates the topics its agents consume; this creates the rest (the
        # dead letters, topics only written to) with our partition count, before
        # the broker's auto-create could on a first write. Ingest processes create
        # none: their webhooks wait for a worker or `streamapp topics --create`.
        if self.role == "worker":
            for topic in list(self.declared_topics.values()):
                await topic.maybe_declare()

    def provide(self, key: Provision[T], value: T) -> None:
        """What a pipeline offers the others (the delivery service ...), by `key`."""
        if key.name in self._provisions:
            raise ValueError(f"{key.name} is provided twice")
        self._provisions[key.name] = value

    def provided(self, key: Provision[T]) -> T:
        """What another pipeline provides; LookupError when that pipeline is not installed."""
        try:
            return cast(T, self._provisions[key.name])
        except KeyError:
            raise LookupError(f"nothing provides {key.name}: is its pipeline installed?") from None

    def route(
        self, path: str, *, tag: str, ingest: bool = False, **operations: Operation
    ) -> Callable[[type[Any]], type[Any]]:
        """Register a view and its declaration (streamapp/routes.py): one cannot exist without the other.

        `ingest` routes only turn requests into events: ingest processes serve them too.
        """
        declared = Route(path, tag, cast("dict[Method, Operation]", operations), ingest=ingest)

        def register(view: type[Any]) -> type[Any]:
            check_view(declared, view)
            if path in self.routes:
                raise ValueError(f"route {path} is declared twice")
            self.routes[path] = declared
            if ingest:
                self.ingest_paths.add(path)
            registered: type[Any] = super(StreamApp, self).page(path)(view)
            return registered

        return register

    def page(self, path: str, **_: Any) -> Callable[[Any], Any]:
        """Refused: a view registered without its declaration would be served undocumented."""
        raise TypeError(f"{path}: register views with StreamApp.route (who may call it, bodies, answers)")

    def run_agent(self, channel: Any, name: str, agent: Agent, **options: Any) -> None:
        """An agent named `name` on `channel` whose stream a processor's or sink's runtime consumes."""
        run = agent.runtime.run

        async def consume(stream: Stream) -> None:
            await run(stream)

        # Faust labels the agent's logs with the function's name: make it this agent's.
        consume.__name__ = consume.__qualname__ = name
        self.agent(channel, name=name, **options)(consume)

    def add_worker_service(self, service: ServiceT) -> None:
        """A service only workers run (agent helpers, schedulers, servers); ingest processes skip it."""
        if self.role == "worker":
            self.add_dependency(service)

    def _new_web(self) -> Any:
        from streamapp.web.metrics import install

        web: Any
        if self.role == "ingest":
            from streamapp.web.ingest import IngestWeb

            web = IngestWeb(self)
        else:
            from streamapp.drain import refuse_while_draining
            from streamapp.web.server import StreamWeb

            web = StreamWeb(self)
            web.web_app.middlewares.append(refuse_while_draining(self))
        install(web.web_app)
        return web

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        # The database starts before the consumer, so that migrations are applied
        # and the pool is open before the first event reaches a sink agent; it
        # stops after it for the same reason.
        return [self.db, *super().on_init_dependencies()]


def faust_options(settings: Settings, role: Role = "worker") -> dict[str, Any]:
    """Translate our settings into Faust's; kept apart so the mapping is easy to read."""
    port = settings.ingest_port if role == "ingest" else settings.web_port
    # Other workers reach this one at the canonical URL (table routing): a wildcard
    # address is no address to reach, so then the host name is (Faust's default).
    reachable = socket.gethostname() if settings.web_host in WILDCARD_HOSTS else settings.web_host
    return {
        "broker": settings.kafka_url,
        "store": settings.table_store,
        # One directory per worker (its data dir): RocksDB locks a partition's database.
        "datadir": settings.data_dir / "state",
        "autodiscover": False,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication,
        "broker_session_timeout": settings.broker_session_timeout,
        "broker_heartbeat_interval": settings.broker_heartbeat_interval,
        "broker_commit_interval": settings.broker_commit_interval,
        "producer_linger": (
            settings.producer_linger_ms if role == "ingest" else settings.worker_producer_linger_ms
        )
        / 1000.0,
        "producer_max_request_size": settings.producer_max_request_bytes,
        # A worker sends each batch's outputs as record batches (runtime/produce.py) and
        # waits for them: Faust's default of 16 KiB cut a batch's changelog (~3 KB per
        # license state) into one produce request per 5 records and partition.
        "producer_max_batch_size": settings.producer_max_request_bytes // 4 if role == "worker" else 16384,
        "stream_buffer_maxsize": settings.worker_stream_buffer if role == "worker" else 4096,
        "key_serializer": "raw",
        "value_serializer": "raw",
        # Faust binds to web_bind (its default: 0.0.0.0, every interface), not web_host.
        "web_bind": settings.web_bind,
        "web_host": reachable,
        "web_port": port,
        "canonical_url": f"http://{reachable}:{port}",
        "web_enabled": True,
        "consumer_auto_offset_reset": "earliest",
        # Tables recover from changelogs; on our embedded broker (memory storage) a
        # changelog lives as long as the broker does.
        "table_cleanup_interval": 60.0,
        "producer_partitioner": key_partitioner,
        # TLS / SASL (STREAMAPP_BROKER_SECURITY_PROTOCOL ...): Faust hands these to
        # the consumer, the producer and the client it creates topics with.
        "broker_credentials": broker_credentials(settings),
    }


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2 of the key), with the hash memoised.

    aiokafka computes murmur2 in pure Python for every keyed message, and our keys
    (customer, task, request ids) repeat. Same function, same partitions, so
    co-partitioning with the tables is unchanged.
    """
    if key is None:
        return int(_DEFAULT_PARTITIONER(key, all_partitions, available))
    return all_partitions[_key_hash(key) % len(all_partitions)]


def create_app(
    settings: Settings, pipelines: Sequence[Pipeline] | None = None, *, role: Role = "worker"
) -> StreamApp:
    """Build the app. Nothing here runs at import time: the caller passes the settings."""
    # Process-wide patches of Faust's internals, before the app builds its services.
    if settings.broker_check_end_offsets:
        use_fetched_end_offsets()
    use_durable_store()
    use_batched_drain()
    use_waking_fetch()
    return StreamApp(settings, pipelines, role=role)
