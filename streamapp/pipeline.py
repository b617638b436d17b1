"""What a pipeline is, and how the core finds them (the `streamapp.pipelines` entry points)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
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
class Pipeline:
    """A pipeline declares its topics, tables, agents and views in `register`.

    `migrations` names a package folder of `NNNN_name.sql` files applied at
    start-up under the pipeline's own scope. `rebuild`, when PostgreSQL holds
    enough to rebuild the pipeline's table (`streamapp rebuild-state`). `settings`,
    the pipeline's settings class (`app.settings.of(cls)` builds it).
    """

    name: str
    register: Callable[[Host], None]
    migrations: str | None = None
    rebuild: Rebuild | None = None
    # The pipeline's own settings class (streamapp/config/<pipeline>.py), checked at start-up.
    settings: type[Settings] | None = None


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
