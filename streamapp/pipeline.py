"""What a pipeline is, and how the core finds them (the `streamapp.pipelines` entry points)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import asyncpg

from streamapp.settings import PIPELINES_GROUP

if TYPE_CHECKING:
    from streamapp.host import Host
    from streamapp.settings import Settings

ENTRY_POINT_GROUP = PIPELINES_GROUP


# A table's rows as its agent would hold them: (key, value) before the table's codecs.
Rows = list[tuple[bytes, Any]]


@dataclass(frozen=True)
class Rebuild:
    """How `streamapp rebuild-state` refills a pipeline's table from PostgreSQL, its system of record."""

    table: str
    read: Callable[[asyncpg.Connection], Awaitable[Rows]]


@dataclass(frozen=True)
class Port:
    """A port a pipeline's worker listens on, and the setting that moves it (said when it is taken)."""

    variable: str
    host: str
    port: int


@dataclass(frozen=True)
class DevOffer:
    """What a pipeline shows and hands on in `streamapp dev`, once its dev secrets are set.

    `rows`, lines of the start-up banner; `env`, lines of `<data dir>/dev.env` (what the
    README's commands read); `environment`, variables set in ours, so the children (the
    simulator) inherit them; `simulator`, its options (e.g. where to reach the pipeline).
    """

    rows: list[tuple[str, str]]
    env: dict[str, str]
    environment: dict[str, str]
    simulator: list[str]


@dataclass(frozen=True)
class DevAid:
    """What a pipeline needs from `streamapp dev`, so the dev runner names no pipeline.

    `keep(kept)` adds the pipeline's dev secrets to `kept` (setdefault: the dict is
    stored, so tokens printed by one run stay valid after a restart) and puts them
    into the environment (setdefault: what the user set wins). `offer(settings, kept)`
    runs after the settings were reloaded with them.
    """

    keep: Callable[[MutableMapping[str, str]], None]
    offer: Callable[[Settings, Mapping[str, str]], DevOffer]


@dataclass(frozen=True)
class Pipeline:
    """A pipeline declares its topics, tables, agents and views in `register`.

    `migrations` names a package folder of `NNNN_name.sql` files applied at
    start-up under the pipeline's own scope. `rebuild`, when PostgreSQL holds
    enough to rebuild the pipeline's table (`streamapp rebuild-state`). `settings`,
    the pipeline's settings class (`app.settings.of(cls)` builds it). `ports`, the
    ports a worker listens on for it besides the core's (checked before start-up);
    `dev`, what `streamapp dev` does for it.
    """

    name: str
    register: Callable[[Host], None]
    migrations: str | None = None
    rebuild: Rebuild | None = None
    # The pipeline's own settings class (streamapp/config/<pipeline>.py), checked at start-up.
    settings: type[Settings] | None = None
    ports: Callable[[Settings], list[Port]] | None = None
    dev: DevAid | None = None


def discover_pipelines(only: Iterable[str] | None = None) -> list[Pipeline]:
    """Load every installed pipeline (or the named ones), sorted by name for a stable order."""
    wanted = set(only) if only else None
    found: list[Pipeline] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        pipeline = ep.load()
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"entry point {ep.name} is not a streamapp Pipeline")
        found.append(pipeline)
    if wanted is not None and wanted - {p.name for p in found}:
        missing = ", ".join(sorted(wanted - {p.name for p in found}))
        raise LookupError(f"unknown pipelines: {missing}")
    return sorted(found, key=lambda p: p.name)
