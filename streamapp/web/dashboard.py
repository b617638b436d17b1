"""The dashboard at `/` of a worker: a page, its assets, its JSON and its live event stream.

Who may call what: the page's assets and the login form are public (they hold
nothing); everything else is the admin's, by bearer token or by the session
cookie the login form sets (streamapp/web/session.py); in dev with no admin
token configured, everything is open like every admin route. `GET /` still
answers `{"status": "OK"}` (Faust's index) to a client that asks for JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import time
import uuid
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl

from aiohttp import web as aioweb
from faust.web import Request, Response

from streamapp import metrics
from streamapp.auth import same
from streamapp.deadletter_list import DeadLetterList
from streamapp.errors import DependencyUnavailable, NotFound, Unauthorized, ValidationFailed, describe
from streamapp.grouplag import GroupOffsets
from streamapp.outbound import store
from streamapp.overview import (
    RateWindow,
    counter_totals,
    dead_letter_counts,
    overview,
    pipeline_of,
    topic_totals,
)
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView, db_call, read_body
from streamapp.web.paging import paging
from streamapp.web.session import clear_session, require_dashboard_admin, set_session

if TYPE_CHECKING:
    from streamapp.host import CoreHost

    class DashboardHost(CoreHost, Protocol):
        """The host as the dashboard sees it: also the dashboard itself (workers only)."""

        dashboard: Dashboard


# Served from the package (no CDN: the page works offline), by name only.
ASSETS = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
OVERVIEW_EVERY = 2.0
EVENTS_EVERY = 1.0
KEEPALIVE_EVERY = 15.0
# The longest the overview waits for the broker or the dead-letter topic; then it says so.
SOURCE_TIMEOUT = 10.0
DELIVERY_STATUSES = frozenset({"pending", "delivering", "succeeded", "dead", "disabled"})


def asset(name: str) -> str:
    return resources.files("streamapp.web").joinpath("static", name).read_text(encoding="utf-8")


def wants_json(request: aioweb.Request) -> bool:
    """An API client (JSON, or no HTML in its Accept) gets JSON; a browser the page."""
    accept = request.headers.get("Accept", "")
    return "text/html" not in accept


def consumed_topics(app: CoreHost) -> set[str]:
    """The topics the group's agents read (their lag is the group's)."""
    names: set[str] = set()
    for agent in app.agents.values():
        names.update(getattr(agent.channel, "topics", ()) or ())
    return names


class Dashboard:
    """What the dashboard's views share: the broker sampler, the dead-letter list, the rates."""

    def __init__(self, app: CoreHost) -> None:
        self.app = app
        self.offsets = GroupOffsets(app)
        self.dead_letters = DeadLetterList(app.settings)
        self.topic_rates = RateWindow()
        self.agent_rates = RateWindow()
        # Set when the web server shuts down: live streams end so the server need not wait for them.
        self.closing = asyncio.Event()

    async def overview(self) -> dict[str, Any]:
        app, now = self.app, time.monotonic()
        pipelines = [p.name for p in app.pipelines]
        # Every agent, also one that has not had a batch yet (its counters have no series then).
        agents: dict[tuple[str, ...], float] = {
            (pipeline_of(name, pipelines), name, side): 0.0 for name in app.agents for side in ("in", "out")
        }
        for side, counter in (("in", metrics.EVENTS_IN), ("out", metrics.EVENTS_OUT)):
            for (pipeline, agent), value in counter_totals(counter).items():
                agents[(pipeline, agent, side)] = value
        self.agent_rates.add(now, agents)
        problems: dict[str, str] = {}
        try:
            # A broker that does not answer must not hold every open page for aiokafka's 40 s.
            async with asyncio.timeout(SOURCE_TIMEOUT):
                rows = await self.offsets.sample(app.declared_topics)
        except Exception as exc:  # the page still shows what it has
            rows, problems["broker"] = [], describe(exc)
        consumed = consumed_topics(app)
        topics = topic_totals(rows, consumed)
        totals: dict[tuple[str, str], float] = {}
        for name, t in topics.items():
            totals[(name, "end")] = t.end
            if t.committed is not None:
                totals[(name, "committed")] = t.committed
        self.topic_rates.add(now, totals)
        try:
            async with asyncio.timeout(SOURCE_TIMEOUT):
                await self.dead_letters.all()
        except Exception as exc:
            problems["dead_letters"] = describe(exc)
        by_reason = dead_letter_counts(self.dead_letters.counts)
        cards = overview(pipelines, topics, self.topic_rates, agents, self.agent_rates, by_reason)
        lags = [t.lag for t in topics.values() if t.lag is not None]
        return {
            "worker": str(app.conf.canonical_url),
            "generated_at": time.time(),
            "pipelines": cards,
            "lag_total": sum(lags) if rows else None,
            "dead_letters": {"total": sum(self.dead_letters.counts.values()), "by_reason": by_reason},
            "problems": problems,
        }


def dashboard_of(view: Any) -> Dashboard:
    app = cast("DashboardHost", view.app)
    return app.dashboard


class Index(JsonView):
    """`/`: the dashboard page (admin), the login form, or Faust's `{"status": "OK"}` for JSON clients."""

    async def get(self, request: Request) -> Response:
        app, raw = cast("DashboardHost", self.app), aiohttp_request(request)
        if wants_json(raw):
            return self.json({"status": "OK"})
        try:
            require_dashboard_admin(app, raw)
        except Unauthorized:
            return self.html(login_page(), headers=PAGE_HEADERS)
        return self.html(asset("dashboard.html"), headers=PAGE_HEADERS)


# The page runs only its own script and style, and is never framed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def login_page(error: str | None = None) -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return asset("login.html").replace("<!--error-->", message)


class Login(JsonView):
    """`POST /dashboard/login` (public): the admin token from the form -> a session cookie."""

    async def post(self, request: Request) -> Response:
        app, raw = cast("DashboardHost", self.app), aiohttp_request(request)
        body = await read_body(request, 4096)
        form = dict(_form_fields(body))
        secret = app.settings.admin_token
        offered = form.get("token", "")
        if secret is None:
            problem = "no admin token is configured (STREAMAPP_ADMIN_TOKEN)"
            return self.html(login_page(problem), status=400, headers=PAGE_HEADERS)
        if not offered or not same(offered, secret.get_secret_value()):
            return self.html(login_page("That is not the admin token."), status=401, headers=PAGE_HEADERS)
        response = see_other("/")
        set_session(app, raw, response)
        return cast(Response, response)


def _form_fields(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed("the login form must be URL-encoded UTF-8") from exc


class Logout(JsonView):
    """`POST /dashboard/logout` (public): forget the session cookie."""

    async def post(self, request: Request) -> Response:
        response = see_other("/")
        clear_session(response)
        return cast(Response, response)


def see_other(location: str) -> aioweb.Response:
    # Returned, not raised: JsonView answers any raised exception as a 500.
    return aioweb.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


class Asset(JsonView):
    """`GET /dashboard/assets/{name}` (public): the page's script and style, from the package."""

    async def get(self, request: Request, name: str) -> Response:
        content_type = ASSETS.get(name)
        if content_type is None:
            raise NotFound(f"no asset {name!r}")
        return self.bytes(
            asset(name).encode(), headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )


class Overview(JsonView):
    """`GET /dashboard/overview` (admin): what the page shows, once, as JSON."""

    async def get(self, request: Request) -> Response:
        require_dashboard_admin(cast("DashboardHost", self.app), aiohttp_request(request))
        return self.json(await dashboard_of(self).overview())


class Events(JsonView):
    """`GET /dashboard/events` (admin): server-sent events, `overview` every 2 s and the new `events`."""

    async def get(self, request: Request) -> Any:
        app, raw = cast("DashboardHost", self.app), aiohttp_request(request)
        require_dashboard_admin(app, raw)
        dashboard = dashboard_of(self)
        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy must not hold the stream back
            }
        )
        await response.prepare(raw)
        seq, next_overview, last_write = 0, 0.0, time.monotonic()
        try:
            while not dashboard.closing.is_set():
                now = time.monotonic()
                fresh = app.recent_events.after(seq)
                if fresh:
                    seq = fresh[-1]["seq"]
                    await _send(response, "events", fresh)
                    last_write = now
                if now >= next_overview:
                    await _send(response, "overview", await dashboard.overview())
                    next_overview, last_write = now + OVERVIEW_EVERY, now
                elif now - last_write >= KEEPALIVE_EVERY:
                    await response.write(b": keep-alive\n\n")
                    last_write = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dashboard.closing.wait(), EVENTS_EVERY)
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        return response


async def _send(response: aioweb.StreamResponse, event: str, data: Any) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode())


class DeadLetters(JsonView):
    """`GET /dead-letters?pipeline=&reason=&limit=&offset=` (admin): newest first, with counts by reason."""

    async def get(self, request: Request) -> Response:
        raw = aiohttp_request(request)
        require_dashboard_admin(cast("DashboardHost", self.app), raw)
        page = paging(raw.query)
        dead = dashboard_of(self).dead_letters
        try:
            query = raw.query
            found = await dead.page(query.get("pipeline"), query.get("reason"), page.offset, page.limit)
        except Exception as exc:
            raise DependencyUnavailable(f"cannot read the dead-letter topic: {describe(exc)}") from exc
        return self.json(
            {
                "total": found.total,
                "offset": page.offset,
                "limit": page.limit,
                "letters": found.letters,
                "by_reason": dead_letter_counts(dead.counts),
            }
        )


class Replay(JsonView):
    """`POST /dead-letters/{dead_letter_id}/replay` (admin): the original bytes back to their topic.

    Exactly what `streamapp dead-letters replay --id` does; replaying twice is
    harmless (the pipelines recognise events by their ids).
    """

    async def post(self, request: Request, dead_letter_id: str) -> Response:
        app = cast("DashboardHost", self.app)
        require_dashboard_admin(app, aiohttp_request(request))
        try:
            letter_id = uuid.UUID(dead_letter_id)
        except ValueError as exc:
            raise ValidationFailed(
                "the dead letter id must be a UUID",
                errors=[{"field": "dead_letter_id", "type": "uuid_parsing", "message": "not a UUID"}],
            ) from exc
        if app.draining:
            raise DependencyUnavailable("the worker is stopping; replay on another worker or later")
        try:
            letter = await dashboard_of(self).dead_letters.replay(letter_id)
        except Exception as exc:
            raise DependencyUnavailable(f"replay failed (it may have been sent): {describe(exc)}") from exc
        if letter is None:
            raise NotFound(f"no dead letter {dead_letter_id}")
        return self.json(
            {
                "replayed": str(letter.dead_letter_id),
                "topic": letter.replay_topic,
                "event_id": letter.event_id,
            }
        )


class RecentDeliveries(JsonView):
    """`GET /deliveries?status=&limit=&offset=` (admin): newest deliveries with their last attempts."""

    async def get(self, request: Request) -> Response:
        app, raw = cast("DashboardHost", self.app), aiohttp_request(request)
        require_dashboard_admin(app, raw)
        page = paging(raw.query, default_limit=20)
        status = raw.query.get("status")
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValidationFailed(
                f"`status` must be one of {', '.join(sorted(DELIVERY_STATUSES))}",
                errors=[{"field": "status", "type": "enum", "message": "unknown delivery status"}],
            )

        async def fetch() -> tuple[list[dict[str, Any]], bool]:
            async with app.db.pool.acquire() as conn:
                return await store.recent(conn, page.limit, page.offset, status)

        rows, more = await db_call(fetch)
        return self.json({"offset": page.offset, "limit": page.limit, "more": more, "deliveries": rows})


def register_dashboard_views(app: DashboardHost) -> None:
    """Worker only: the page reads the worker's agents and the broker."""
    app.dashboard = Dashboard(app)
    app.add_worker_service(app.dashboard.offsets)
    app.add_worker_service(app.dashboard.dead_letters)
    for path, view in (
        ("/", Index),
        ("/dashboard/login", Login),
        ("/dashboard/logout", Logout),
        ("/dashboard/assets/{name}", Asset),
        ("/dashboard/overview", Overview),
        ("/dashboard/events", Events),
        ("/dead-letters", DeadLetters),
        ("/dead-letters/{dead_letter_id}/replay", Replay),
        ("/deliveries", RecentDeliveries),
    ):
        app.page(path)(view)

    async def end_streams(_: aioweb.Application) -> None:
        app.dashboard.closing.set()

    web: Any = app.web  # Faust's aiohttp driver: its aiohttp application
    web.web_app.on_shutdown.append(end_streams)
