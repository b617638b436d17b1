"""Unit-test fixtures: an app built from settings that point nowhere (agents run in test_context)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from streamapp.app import StreamApp, create_app
from streamapp.compat import created_consumer
from streamapp.settings import Settings


@pytest.fixture
async def app() -> AsyncIterator[StreamApp]:
    settings = Settings(
        broker_url="kafka://127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        sink_batch_within=0.01,
    )
    streamapp = create_app(settings)
    # The faust testing guide's fixture, for current pytest-asyncio.
    streamapp.loop = asyncio.get_running_loop()
    streamapp.finalize()
    streamapp.conf.store = URL("memory://")
    yield streamapp
    # A stream creates the (never started) Kafka consumer lazily, and with it a
    # thread event loop that nothing closes; close it so no ResourceWarning leaks.
    consumer = created_consumer(streamapp)
    thread = getattr(consumer, "_thread", None) if consumer is not None else None
    if thread is not None and not thread.thread_loop.is_closed():
        thread.thread_loop.close()
