"""The host: what a pipeline, and the core's own services, may use of the app they run in.

`streamapp.app.StreamApp` is the one implementation. Modules annotate with these
protocols instead of importing the app, so nothing imports `streamapp.app` for a type
and the app module depends on the rest, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from mode import ServiceT

    from streamapp.activity import RecentEvents
    from streamapp.auth import Authenticator, Kind
    from streamapp.db.pool import Database
    from streamapp.deadletters import DeadLetters
    from streamapp.publishing import Gate
    from streamapp.routes import Operation, Route
    from streamapp.settings import Settings
    from streamapp.typing import Stream, Topic

T = TypeVar("T")

# A worker runs everything; an ingest process only the web server (ingest routes),
# the producer and the database pool (see streamapp/web/ingest.py).
Role = Literal["worker", "ingest"]


class Provision(Generic[T]):
    """The name of something one pipeline provides to the others through the host.

    The provider calls `host.provide(KEY, value)` while it registers; a user calls
    `host.provided(KEY)` when it needs the value (at request or run time: pipelines
    register in name order, so the provider may come after the user).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Provision({self.name!r})"


class Named(Protocol):
    """Anything with a name (a pipeline, as the core's services list them)."""

    @property
    def name(self) -> str: ...


class Consumes(Protocol):
    """What consumes an agent's stream (a batch runtime)."""

    async def run(self, stream: Stream) -> None: ...


class Agent(Protocol):
    """A processor or a sink: its batch runtime (streamapp.runtime.runner) consumes the agent's stream."""

    @property
    def runtime(self) -> Consumes: ...


class Host(Protocol):
    """What a pipeline's `register` and its modules may use: topics, tables, agents, routes, services."""

    @property
    def settings(self) -> Settings: ...

    @property
    def role(self) -> Role: ...

    @property
    def db(self) -> Database: ...

    @property
    def dead_letters(self) -> DeadLetters: ...

    # A sample of the events the agents handled lately (the dashboard's live feed).
    @property
    def recent_events(self) -> RecentEvents: ...

    # Who may call: every pipeline adds the authenticator of its own principals.
    @property
    def authenticators(self) -> list[Authenticator]: ...

    # Which kind of principal owns the deliveries a pipeline makes (pipeline name -> kind).
    @property
    def delivery_owner_kinds(self) -> dict[str, Kind]: ...

    # Faust's own, typed loosely here: topics, tables, pages, the producer, hooks.
    @property
    def topic(self) -> Callable[..., Topic]: ...

    @property
    def Table(self) -> Callable[..., Any]: ...

    @property
    def GlobalTable(self) -> Callable[..., Any]: ...

    @property
    def tables(self) -> Any: ...

    @property
    def producer(self) -> Any: ...

    # Faust's consumer generation: a rebalance changes it (decoded-state caches, plans ahead).
    @property
    def consumer_generation_id(self) -> int: ...

    @property
    def conf(self) -> Any: ...

    @property
    def on_before_shutdown(self) -> Any: ...

    def route(
        self, path: str, *, tag: str, ingest: bool = False, **operations: Operation
    ) -> Callable[[type[Any]], type[Any]]: ...

    def run_agent(self, channel: Any, name: str, agent: Agent, **options: Any) -> None: ...

    def add_worker_service(self, service: ServiceT) -> None: ...

    @property
    def add_dependency(self) -> Callable[[ServiceT], ServiceT]: ...

    def provide(self, key: Provision[T], value: T) -> None: ...

    def provided(self, key: Provision[T]) -> T: ...


class CoreHost(Host, Protocol):
    """The host as the core's own services see it: also the consumer and the web tier's state."""

    # Set while `streamapp dev` stops: webhook routes answer 503 + Retry-After.
    draining: bool

    @property
    def readiness(self) -> Gate: ...

    @property
    def ingest_paths(self) -> set[str]: ...

    # Every route, declared with who may call it and what it takes and answers (OpenAPI).
    @property
    def routes(self) -> dict[str, Route]: ...

    # The pipelines registered (streamapp.pipeline.Pipeline; only their names here).
    @property
    def pipelines(self) -> Sequence[Named]: ...

    @property
    def agents(self) -> Any: ...

    # Faust's web driver (its aiohttp application is `web.web_app`).
    @property
    def web(self) -> Any: ...

    # Every topic the app writes or reads, by name (streamapp/topics.py fills it).
    @property
    def declared_topics(self) -> dict[str, Topic]: ...

    @property
    def consumer(self) -> Any: ...

    @property
    def topics(self) -> Any: ...

    @property
    def assignor(self) -> Any: ...

    @property
    def table_route(self) -> Any: ...
