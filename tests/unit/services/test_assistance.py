"""The routing service's start-up rules: a bad table stops a prod worker, elsewhere it answers 503."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streamapp.rules.assistance import RoutingError
from streamapp.services.assistance import Routing, RoutingUnavailable
from streamapp.settings import Settings
from tests.unit.webapp import PROD


def routing(tmp_path: Path, text: str | None, **settings: Any) -> Routing:
    path = tmp_path / "routes.toml"
    if text is not None:
        path.write_text(text)
    app = SimpleNamespace(settings=Settings(assistance_routing_file=path, **settings))
    # A stand-in for the StreamApp: the routing service reads only `app.settings` here.
    return Routing(app, env={})


async def test_a_bad_file_stops_a_prod_worker(tmp_path: Path) -> None:
    service = routing(tmp_path, "[routes\n", **{k: v for k, v in PROD.items() if k != "ingest_ack_timeout"})
    with pytest.raises(RoutingError, match="not valid TOML"):
        await service.on_start()


async def test_elsewhere_the_worker_starts_and_says_why_there_is_no_table(tmp_path: Path) -> None:
    service = routing(tmp_path, None)
    await service.on_start()
    try:
        assert service.table is None
        assert service.last_error is not None
        with pytest.raises(RoutingUnavailable, match="cannot read routing file") as info:
            await service.current()
        assert (info.value.status, info.value.reason) == (503, "routing_unavailable")
    finally:
        await service.on_stop()


def test_read_merges_the_environment_override(tmp_path: Path) -> None:
    text = '[routes]\nsales = "s"\n[channels.s]\ntype = "slack"\nwebhook_url = "https://h.test/a"\n'
    override = '[channels.s]\ntype = "slack"\nwebhook_url = "https://h.test/b"\nrate_limit = 2\n'
    service = routing(tmp_path, text, assistance_routes=override)
    table = service.read()
    assert table.source.endswith("routes.toml + STREAMAPP_ASSISTANCE_ROUTES")
    assert table.channels["s"].min_interval == 0.5
    with pytest.raises(RoutingError, match="STREAMAPP_ASSISTANCE_ROUTES: not valid TOML"):
        routing(tmp_path, text, assistance_routes="[[").read()


def test_the_packaged_default_is_read_when_no_file_is_named() -> None:
    app = SimpleNamespace(settings=Settings())
    service = Routing(
        app,  # a stand-in for the StreamApp, as in routing() above
        env={
            "STREAMAPP_ASSISTANCE_SLACK_WEBHOOK_URL": "https://h.test/x",
            "STREAMAPP_ASSISTANCE_PRICING_EMAIL_TO": "p@x.test",
        },
    )
    assert service.read().known_topics == ["pricing", "sales"]
    assert service.source == "packaged default routes.toml"
