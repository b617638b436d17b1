"""Contract of streamapp.compat with the installed Faust and aiokafka: the private names it uses exist."""

from __future__ import annotations

import inspect

from faust.transport.drivers import aiokafka as driver

from streamapp import compat


def test_the_consumer_thread_still_asks_highwaters_this_way() -> None:
    thread_cls = driver.AIOKafkaConsumerThread
    compat.use_fetched_end_offsets()
    compat.use_fetched_end_offsets()  # idempotent: wrapped once
    original = thread_cls._streamapp_listed_highwaters  # type: ignore[attr-defined]
    assert thread_cls._highwaters is not original
    for method in (original, thread_cls._highwaters):
        assert inspect.iscoroutinefunction(method)
        assert list(inspect.signature(method).parameters) == ["self", "partitions"]
    # What the wrapper calls on Faust's side.
    assert callable(driver.server_list)
    assert callable(driver.credentials_to_aiokafka_auth)
    assert inspect.iscoroutinefunction(thread_cls.highwaters)
