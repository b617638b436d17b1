"""The `Routing` service: loads the routing table, writes its channels as endpoints, reloads on SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from mode import Service

from streamapp.config.assistance import AssistanceSettings
from streamapp.envelope import utcnow
from streamapp.errors import DependencyUnavailable, StreamappError, describe, is_retriable
from streamapp.outbound import store
from streamapp.outbound.channels import channel_types
from streamapp.retry import retry_transient
from streamapp.rules.assistance import RoutingError, RoutingTable, build_table, merge, parse_toml

if TYPE_CHECKING:
    from streamapp.host import Host

log = logging.getLogger(__name__)
OVERRIDE_SOURCE = "STREAMAPP_ASSISTANCE_ROUTES"


class RoutingUnavailable(StreamappError):
    """No routing table is in force (a bad file at start-up, or PostgreSQL not reached yet)."""

    status = 503
    reason = "routing_unavailable"
    retriable = True


@dataclass(frozen=True)
class ReloadReport:
    version: str
    previous_version: str | None
    changed_channels: list[str]
    topics: list[str]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "reloaded",
            "version": self.version,
            "previous_version": self.previous_version,
            "changed_channels": self.changed_channels,
            "topics": self.topics,
            "warnings": self.warnings,
        }


class Routing(Service):
    """Holds the routing table in force. A table is in force only once its channels are endpoints.

    That order matters: a request routed by this table is accepted only when
    every channel it names can be delivered to by any worker. A reload that
    fails (bad document, database down) changes nothing.
    """

    def __init__(self, app: Host, env: Mapping[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self._env = env
        self._table: RoutingTable | None = None
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._starting = False
        self.loaded_at: datetime | None = None
        self.last_error: RoutingError | None = None
        self._signal_loop: asyncio.AbstractEventLoop | None = None

    @property
    def table(self) -> RoutingTable | None:
        return self._table

    @property
    def source(self) -> str:
        path = self.app.settings.of(AssistanceSettings).assistance_routing_file
        name = str(path) if path is not None else "packaged default routes.toml"
        return name + (
            f" + {OVERRIDE_SOURCE}" if self.app.settings.of(AssistanceSettings).assistance_routes else ""
        )

    def read(self) -> RoutingTable:
        """Read and check the file and the environment's override (blocking file I/O)."""
        settings = self.app.settings.of(AssistanceSettings)
        path = settings.assistance_routing_file
        try:
            if path is None:
                text = resources.files("streamapp.rules").joinpath("assistance.toml").read_text("utf-8")
            else:
                text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RoutingError(
                f"cannot read routing file {path}: {describe(exc)}",
                errors=[{"field": "", "type": "unreadable", "message": describe(exc)}],
            ) from exc
        document = parse_toml(text, str(path or "routes.toml"))
        if settings.assistance_routes is not None:
            override = parse_toml(settings.assistance_routes.get_secret_value(), OVERRIDE_SOURCE)
            document = merge(document, override)
        env = self._env if self._env is not None else os.environ
        return build_table(document, channel_types(), env, self.source)

    async def on_start(self) -> None:
        try:
            table = await asyncio.to_thread(self.read)
        except RoutingError as exc:
            if self.app.settings.env == "prod":
                raise
            # Elsewhere the worker still serves the other pipelines; POST /assistance answers
            # 503 with this error until a reload succeeds.
            self.last_error = exc
            log.error("assistance routing not loaded: %s", exc.detail)
        else:
            self._starting = True
            self.add_future(self._first_activation(table))
        self._install_sighup()

    async def on_stop(self) -> None:
        if self._signal_loop is not None:
            with contextlib.suppress(Exception):
                self._signal_loop.remove_signal_handler(signal.SIGHUP)
            self._signal_loop = None

    def _install_sighup(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread (or no signals here): the admin endpoint still reloads.
            log.debug("no SIGHUP handler for assistance routing")
            return
        self._signal_loop = loop

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the assistance routing table")
        self.add_future(self._reload_logged())

    async def _reload_logged(self) -> None:
        with contextlib.suppress(StreamappError):  # reload() has logged why
            await self.reload()

    async def _first_activation(self, table: RoutingTable) -> None:
        settings = self.app.settings.of(AssistanceSettings)

        async def activate() -> None:
            async with self._lock:
                if self._table is None:  # a reload may have won the race
                    await self._activate(table)

        try:
            # The pool opens after this service starts: waiting for it is normal, not worth a warning.
            while not self.should_stop:
                try:
                    _ = self.app.db.pool
                    break
                except DependencyUnavailable:
                    await asyncio.sleep(0.1)
            # From here on a failure is worth a warning (PostgreSQL down): retry like a sink.
            await retry_transient(
                activate,
                what="assistance routing: writing channel endpoints",
                initial=settings.retry_initial_backoff,
                maximum=settings.retry_max_backoff,
            )
        except Exception as exc:
            log.error("assistance routing not activated: %s", describe(exc))
        finally:
            self._starting = False

    async def _activate(self, table: RoutingTable) -> list[str]:
        changed: list[str] = []
        configs = table.stored_configs()
        async with self.app.db.pool.acquire() as conn, conn.transaction():
            for name, spec in sorted(table.channels.items()):
                kind, config, interval = configs[spec.endpoint_id]
                if await store.upsert_channel_endpoint(conn, spec.endpoint_id, kind, config, interval):
                    changed.append(name)
        previous = self._table
        self._table = table
        self.loaded_at = utcnow()
        self.last_error = None
        self._ready.set()
        log.info(
            "assistance routing %s in force (%s): topics %s; channels changed: %s",
            table.version,
            table.source,
            ", ".join(table.known_topics),
            ", ".join(changed) or "none",
            extra={"previous_version": previous.version if previous else None},
        )
        for warning in table.warnings:
            log.warning("assistance routing: %s", warning)
        return changed

    async def reload(self) -> ReloadReport:
        """Read, check and activate the file again; on any failure the table in force stays."""
        async with self._lock:
            kept = self._table.version if self._table else None
            try:
                table = await asyncio.to_thread(self.read)
            except RoutingError as exc:
                self.last_error = exc
                log.error(
                    "assistance routing reload rejected, keeping %s: %s", kept or "no table", exc.detail
                )
                raise
            try:
                changed = await self._activate(table)
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                log.error("assistance routing reload failed, keeping %s: %s", kept, describe(exc))
                raise DependencyUnavailable(
                    f"could not write the channels to the database ({describe(exc)});"
                    " the table in force is kept"
                ) from exc
            return ReloadReport(
                version=table.version,
                previous_version=kept,
                changed_channels=changed,
                topics=table.known_topics,
                warnings=list(table.warnings),
            )

    async def current(self) -> RoutingTable:
        """The table in force; 503 `routing_unavailable` while there is none."""
        if self._table is not None:
            return self._table
        if not self._starting:
            detail = self.last_error.detail if self.last_error else "no routing table loaded"
            raise RoutingUnavailable(f"assistance routing unavailable: {detail}")
        try:
            async with asyncio.timeout(self.app.settings.ingest_ack_timeout):
                await self._ready.wait()
        except TimeoutError as exc:
            raise RoutingUnavailable(
                "the routing table is not active yet: its channels could not be written to PostgreSQL"
            ) from exc
        assert self._table is not None
        return self._table
