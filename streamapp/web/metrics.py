"""`GET /metrics` (Prometheus text format) and the middleware that counts, times and answers every request."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from faust.web import Request, Response

from streamapp import metrics
from streamapp.auth import require_admin
from streamapp.errors import DependencyUnavailable
from streamapp.routes import ADMIN, Operation, Reply
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView
from streamapp.web.core import consumer_lag

if TYPE_CHECKING:
    from streamapp.host import CoreHost

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

# The route label of requests that matched no route: one series, not one per probed URL.
UNMATCHED = "<unmatched>"


def route_label(request: aioweb.Request) -> str:
    """The route's pattern (`/licenses/{customer_id}`), never the raw path: bounded cardinality."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@aioweb.middleware
async def observe_requests(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    """Counts and times every request; unknown routes and wrong methods answer JSON like other errors.

    aiohttp answers those itself, in plain text, raising from the router's match
    before any view runs: only a middleware sees them.
    """
    started = time.perf_counter()
    route = route_label(request)
    status = 500
    try:
        try:
            response = await handler(request)
        except aioweb.HTTPNotFound:
            response = _json_error(404, "not_found", f"no route for {request.path}")
        except aioweb.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            response = _json_error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}; allowed: {allowed}",
            )
            response.headers["Allow"] = allowed
        status = response.status
        return response
    except aioweb.HTTPException as exc:  # redirects and the like: counted with their own status
        status = exc.status
        raise
    finally:
        method = request.method if request.method in METHODS else "OTHER"
        count, duration = _series(route, method, status)
        count.inc()
        duration.observe(time.perf_counter() - started)


# Methods a client may send are any token: the rest share one label value.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    # `labels()` costs ~1 us per call (checks, a lock): looked up once per route, method and status.
    return (
        metrics.HTTP_REQUESTS.labels(route, method, str(status)),
        metrics.HTTP_DURATION.labels(route, method),
    )


def _json_error(status: int, reason: str, detail: str) -> aioweb.Response:
    return aioweb.json_response({"error": reason, "detail": detail}, status=status)


def install(web_app: aioweb.Application) -> None:
    """Outermost middleware, so the ingest guard's answers are counted too."""
    web_app.middlewares.insert(0, observe_requests)


class Metrics(JsonView):
    """Prometheus metrics of this process; on a worker, the consumer lag is computed now.

    Who may call it: the admin, like `/lag` (it shows the same numbers, and
    route and topic names); a Prometheus scrape sends the admin token.
    """

    async def get(self, request: Request) -> Response:
        require_admin(self.core, aiohttp_request(request))
        if self.core.role == "worker":
            try:
                metrics.set_consumer_lag(await consumer_lag(self.core))
            except DependencyUnavailable:  # still starting: the other series are worth having
                metrics.set_consumer_lag([])
        body, content_type = metrics.exposition()
        return self.bytes(body, headers={"Content-Type": content_type})


def register_metrics_view(app: CoreHost) -> None:
    app.route(
        "/metrics",
        tag="core",
        ingest=True,
        get=Operation(
            "Prometheus metrics of this process",
            ADMIN,
            {200: Reply("Prometheus text exposition format", content_type="text/plain")},
        ),
    )(Metrics)
