"""Pipelines are found through entry points; migrations are loaded from their package."""

from __future__ import annotations

import pytest

from streamapp.db.migrate import load_migrations
from streamapp.pipeline import Pipeline, discover_pipelines


def test_discovers_the_licenses_pipeline() -> None:
    pipelines = discover_pipelines()
    assert "licenses" in [p.name for p in pipelines]
    assert all(isinstance(p, Pipeline) for p in pipelines)
    assert [p.name for p in discover_pipelines(["licenses"])] == ["licenses"]


def test_unknown_pipeline_is_an_error() -> None:
    with pytest.raises(LookupError, match="nope"):
        discover_pipelines(["licenses", "nope"])


def test_migrations_load_in_order() -> None:
    migrations = load_migrations("licenses", "streamapp.stores.licenses.migrations")
    assert next(m.version for m in migrations) == "0001_licenses"
    assert all(m.scope == "licenses" and len(m.checksum) == 64 for m in migrations)


def test_key_partitioner_is_kafkas_default() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    from streamapp.app import key_partitioner

    default = DefaultPartitioner()
    partitions = list(range(8))
    for key in (b"a", b"customer-1", bytes(range(64)), "é".encode()):
        assert key_partitioner(key, partitions, partitions) == default(key, partitions, partitions)
    assert key_partitioner(None, partitions, partitions) in partitions
