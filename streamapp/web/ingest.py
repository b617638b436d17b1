"""The ingest tier's web server: only the ingest routes, on a port several processes share.

An ingest process (`streamapp ingest`) is the same app in Faust's producer-only
mode: the same views, validation, authentication and partitioner as a worker,
but no consumer, agents or tables. Its CPU goes to turning requests into
acknowledged events, so a webhook is answered in milliseconds however busy the
agents are (a worker serves HTTP on the event loop its agents use, and a
batch of a few hundred events holds the loop for tens of milliseconds).

Routes that read tables or answer for a partition's owner are a worker's: here
they get a 404 `not_an_ingest_route` rather than an answer from a process that
holds no state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web as aioweb
from aiohttp.typedefs import Middleware
from aiohttp.web_runner import BaseSite, TCPSite

from streamapp.web.server import StreamWeb

if TYPE_CHECKING:
    from streamapp.host import CoreHost

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


class IngestWeb(StreamWeb):
    """Faust's aiohttp server with SO_REUSEPORT and a guard that serves only ingest routes."""

    def __init__(self, app: CoreHost, **kwargs: object) -> None:
        # Faust types its web driver's app as its own AppT; ours is a StreamApp.
        super().__init__(cast(Any, app), **kwargs)
        served = app.ingest_paths  # filled while the pipelines register, read per request
        self.web_app.middlewares.append(only_ingest_routes(served))

    def _new_transport_tcp(self) -> BaseSite:
        # Every ingest process binds the same port; the kernel spreads connections.
        return TCPSite(
            self._runner,
            self.app.conf.web_bind,
            self.app.conf.web_port,
            ssl_context=self.app.conf.web_ssl_context,
            reuse_port=True,
        )


def only_ingest_routes(served: set[str]) -> Middleware:
    @aioweb.middleware
    async def guard(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else None
        # Declared `ingest=True` (streamapp/routes.py): the ingest routes, probes, metrics, docs.
        if path is None or path in served:
            return await handler(request)  # unknown paths: the JSON 404 of web.metrics.observe_requests
        return aioweb.json_response(
            {
                "error": "not_an_ingest_route",
                "detail": f"{path} is served by the workers (STREAMAPP_WEB_PORT); "
                "this ingest process accepts only: " + ", ".join(sorted(served)),
            },
            status=404,
        )

    return guard
