"""The app factory's Faust options: where the web server binds and how other workers reach it."""

from __future__ import annotations

import socket

from streamapp.app import faust_options
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
