"""The dashboard at `/` of a worker: a page, its assets, its JSON and its live event stream.

Who may call what: the page, its assets and the login form are public (they hold
nothing; `/` shows the login form until the admin signs in); the numbers are
the admin's, by bearer token or by the session cookie the login form sets
(streamapp/web/session.py); in dev with no admin token configured, everything
is open like every admin route. The dead-letter and delivery lists it shows are
routes of their own (streamapp/web/dead_letters.py, streamapp/web/deliveries.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl

from aiohttp import web as aioweb
from faust.web import Request, Response
from pydantic import BaseModel, Field

from streamapp import metrics
from streamapp.auth import same
from streamapp.deadletter_list import DeadLetterList
from streamapp.errors import NotFound, Unauthorized, ValidationFailed, describe
from streamapp.grouplag import GroupOffsets
from streamapp.overview import (
    RateWindow,
    counter_totals,
    dead_letter_counts,
    overview,
    pipeline_of,
    topic_totals,
)
from streamapp.routes import DASHBOARD_ADMIN, PUBLIC, Operation, Reply
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView, read_body
from streamapp.web.session import clear_session, require_dashboard_admin, set_session

if TYPE_CHECKING:
    from streamapp.host import CoreHost

    class DashboardHost(CoreHost, Protocol):
        """The host as the dashboard sees it: also the dashboard itself (set while the app is built)."""

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


def asset(name: str) -> str:
    return resources.files("streamapp.web").joinpath("static", name).read_text(encoding="utf-8")


def consumed_topics(app: CoreHost) -> set[str]:
    """The topics the group's agents read (their lag is the group's)."""
    names: set[str] = set()
    for agent in app.agents.values():
        names.update(getattr(agent.channel, "topics", ()) or ())
    return names


class ReasonCount(BaseModel):
    pipeline: str
    reason: str
    count: int


class TopicCard(BaseModel):
    name: str
    partitions: int
    end: int
    committed: int | None = Field(description="The group's committed offsets; null: never committed")
    lag: int | None = Field(description="null: the group does not read the topic")
    produced_per_s: float | None = Field(description="null until two samples")
    consumed_per_s: float | None


class AgentCard(BaseModel):
    name: str
    events_in: int
    events_out: int
    in_per_s: float | None
    out_per_s: float | None


class PipelineCard(BaseModel):
    name: str
    topics: list[TopicCard]
    agents: list[AgentCard]
    in_per_s: float | None = Field(description="This worker's agents")
    out_per_s: float | None
    dead_letters: int
    lag: int | None


class DeadLetterTotals(BaseModel):
    total: int
    by_reason: list[ReasonCount] = Field(description="Most frequent first")


class OverviewReply(BaseModel):
    worker: str
    generated_at: float = Field(description="Unix time")
    pipelines: list[PipelineCard]
    lag_total: int | None = Field(description="All workers', from the broker; null: it did not answer")
    dead_letters: DeadLetterTotals
    problems: dict[str, str] = Field(description="What could not be read (`broker`, `dead_letters`) and why")


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
    """`/`: the dashboard page for the admin, the login form for anyone else."""

    async def get(self, request: Request) -> Response:
        app, raw = cast("DashboardHost", self.app), aiohttp_request(request)
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
        return self.reply(OverviewReply, await dashboard_of(self).overview())


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


LOGIN_FORM = "application/x-www-form-urlencoded"


def register_dashboard_views(app: DashboardHost) -> None:
    """Declared on every process (an ingest process answers `not_an_ingest_route`); served by workers,
    whose agents and broker the page reads."""
    app.dashboard = Dashboard(app)
    app.add_worker_service(app.dashboard.offsets)
    app.add_worker_service(app.dashboard.dead_letters)
    page = "The dashboard page for the admin (token or session cookie), the login form for anyone else"
    app.route(
        "/", tag="dashboard", get=Operation("The dashboard", PUBLIC, {200: Reply(page, None, "text/html")})
    )(Index)
    app.route(
        "/dashboard/login",
        tag="dashboard",
        post=Operation(
            "Sign in: the admin token, typed once, becomes a session cookie",
            PUBLIC,
            {
                303: Reply("Signed in: the session cookie is set; on to `/`", None, None),
                400: Reply(
                    "No admin token is configured: nobody signs in (the form, saying so)", None, "text/html"
                ),
                401: Reply("Not the admin token (the form again, saying so)", None, "text/html"),
            },
            other_bodies={LOGIN_FORM: "`token=<the admin token>` (the login form)"},
            description="The cookie holds an expiry and an HMAC keyed by the admin token, never the token: "
            "HttpOnly, SameSite=Strict, Secure behind TLS, 12 h.",
        ),
    )(Login)
    app.route(
        "/dashboard/logout",
        tag="dashboard",
        post=Operation(
            "Sign out: the session cookie is cleared",
            PUBLIC,
            {303: Reply("Signed out; on to `/`", None, None)},
        ),
    )(Logout)
    app.route(
        "/dashboard/assets/{name}",
        tag="dashboard",
        get=Operation(
            "The page's script and style (packaged)",
            PUBLIC,
            {200: Reply("The file", None, "text/*")},
            errors=(NotFound,),
        ),
    )(Asset)
    app.route(
        "/dashboard/overview",
        tag="dashboard",
        get=Operation(
            "What the page shows: per pipeline its topics, agents, rates, lag and dead letters",
            DASHBOARD_ADMIN,
            {200: Reply("The numbers, and what could not be read", OverviewReply)},
        ),
    )(Overview)
    app.route(
        "/dashboard/events",
        tag="dashboard",
        get=Operation(
            "The page's live feed (server-sent events)",
            DASHBOARD_ADMIN,
            {
                200: Reply(
                    "`event: overview` (an OverviewReply) every 2 s; `event: events` (a sample of what "
                    "the agents handled) as they come; a comment every 15 s while idle",
                    None,
                    "text/event-stream",
                )
            },
        ),
    )(Events)

    async def end_streams(_: aioweb.Application) -> None:
        app.dashboard.closing.set()

    web: Any = app.web  # Faust's aiohttp driver: its aiohttp application
    web.web_app.on_shutdown.append(end_streams)
