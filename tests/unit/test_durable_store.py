"""The durable table store (streamapp.compat.DurableStore) and the private Faust names it relies on."""

from __future__ import annotations

import inspect
from pathlib import Path

import faust
import mode
from faust.stores.rocksdb import Store
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import Producer
from faust.types import TP

from streamapp.compat import DurableStore, use_durable_store


def test_the_private_faust_names_exist() -> None:
    # A Faust upgrade that renames one of these breaks the store or recovery silently.
    for name in ("_get_bucket_for_key", "_db_for_partition", "_visible_items", "_visible_keys", "_get"):
        assert callable(getattr(Store, name)), name
    assert "_key_index" in inspect.getsource(Store.__init__)
    for name in ("_build_offsets", "_build_highwaters"):
        params = list(inspect.signature(getattr(Recovery, name)).parameters)
        assert params == ["self", "consumer", "tps", "destination", "title"], (name, params)
    assert "active_offsets[tp] > active_highwaters[tp]" in inspect.getsource(Recovery._restart_recovery.fun)
    assert callable(mode.Worker._schedule_shutdown)
    assert callable(Producer._ensure_producer)


def durable_table(tmp_path: Path) -> faust.types.TableT[bytes, bytes]:
    use_durable_store()
    app = faust.App(
        "durable-test", store="rocksdb://", datadir=tmp_path, key_serializer="raw", value_serializer="raw"
    )
    table: faust.types.TableT[bytes, bytes] = app.Table("things", key_type=bytes, partitions=4)
    return table


def test_reads_by_key_whatever_the_current_event(tmp_path: Path) -> None:
    store = durable_table(tmp_path).data
    assert isinstance(store, DurableStore)
    store.put_raw(2, b"k2", b'"v2"')
    store.put_raw(3, b"k3", b'"v3"')
    store._key_index.clear()  # as after a restart: no index, the key is looked up in each partition
    assert store[b"k2"] == "v2"
    assert b"k3" in store
    assert b"nope" not in store
    assert store.partition_items(2) == [(b"k2", b'"v2"')]
    store.set_persisted_offset(TP("durable-test-things-changelog", 2), 41)
    # Faust's offset key is not a table key.
    assert store.partition_items(2) == [(b"k2", b'"v2"')]
    assert store.clear_partition(2) == 1
    assert b"k2" not in store
    store.close()


def test_state_survives_a_new_store_on_the_same_directory(tmp_path: Path) -> None:
    first = durable_table(tmp_path).data
    assert isinstance(first, DurableStore)
    first.put_raw(1, b"customer", b'"state"')
    first.set_persisted_offset(TP("durable-test-things-changelog", 1), 7)
    first.close()
    second = durable_table(tmp_path).data
    assert isinstance(second, DurableStore)
    # A worker opens the databases of the partitions it is assigned.
    assert second.partition_items(1) == [(b"customer", b'"state"')]
    assert second[b"customer"] == "state"
    assert second.persisted_offset(TP("durable-test-things-changelog", 1)) == 7
    second.close()
