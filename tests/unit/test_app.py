"""The app: complete when constructed, what pipelines provide each other, and its Faust options."""

from __future__ import annotations

import socket
from typing import Any, cast

import pytest
from pydantic import SecretStr, ValidationError

from streamapp.app import StreamApp, create_app, faust_options
from streamapp.outbound.service import DELIVERY_SERVICE
from streamapp.pipeline import discover_pipelines
from streamapp.settings import Settings

NOWHERE = Settings(broker_url="kafka://127.0.0.1:1", database_url="postgresql://nobody@127.0.0.1:1/none")


def test_the_worker_listens_on_0_0_0_0() -> None:
    """Finding 4: Faust's web_bind (default 0.0.0.0) was never set; web_host only named the URL."""
    options = faust_options(NOWHERE)
    assert options["web_bind"] == "127.0.0.1"
    assert options["canonical_url"] == "http://127.0.0.1:6066"
    assert faust_options(NOWHERE, role="ingest")["web_bind"] == "127.0.0.1"
    # A container binds every interface and advertises its name to the other workers.
    worker = faust_options(NOWHERE.model_copy(update={"web_bind": "0.0.0.0", "web_host": "worker-1"}))
    assert (worker["web_bind"], worker["canonical_url"]) == ("0.0.0.0", "http://worker-1:6066")
    # A wildcard is no name to reach: then the host name is advertised (Faust's default).
    wildcard = faust_options(NOWHERE.model_copy(update={"web_bind": "0.0.0.0", "web_host": "0.0.0.0"}))
    assert wildcard["canonical_url"] == f"http://{socket.gethostname()}:6066"


def test_the_app_is_complete_when_constructed() -> None:
    app = StreamApp(NOWHERE, pipelines=[discover_pipelines(["deliveries"])[0]])
    assert app.db is not None
    assert app.dead_letters.topic.get_topic_name() in app.declared_topics
    # The deliveries pipeline provides its service through the host, for the others.
    assert app.provided(DELIVERY_SERVICE).channel_kinds
    web: Any = app.web  # Faust's aiohttp driver; its type stubs name only the abstract Web
    assert "/deliveries/{subject_id}" in {route.resource.canonical for route in web.web_app.router.routes()}


def test_what_no_pipeline_provides_is_a_lookup_error_naming_it() -> None:
    app = StreamApp(NOWHERE, pipelines=[])
    with pytest.raises(LookupError, match=r"deliveries\.service"):
        app.provided(DELIVERY_SERVICE)
    app.provide(DELIVERY_SERVICE, cast(Any, "first"))
    with pytest.raises(ValueError, match="provided twice"):
        app.provide(DELIVERY_SERVICE, cast(Any, "second"))


def test_each_pipelines_settings_are_checked_when_the_app_is_built() -> None:
    # The core's prod doors are locked; the Salesforce webhook's is not.
    settings = NOWHERE.model_copy(update={"env": "prod", "admin_token": SecretStr("admin")})
    with pytest.raises(ValidationError, match="STREAMAPP_SALESFORCE_SECRET must be set"):
        create_app(settings, pipelines=discover_pipelines(["licenses"]))
    create_app(settings, pipelines=discover_pipelines(["deliveries"]))
