"""The dashboard's HTTP surface without a broker: who gets in, the login cookie, bad input, assets."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

from streamapp.web.session import COOKIE, LIFETIME, mint, valid
from tests.unit.webapp import PROD, bearer, served

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
ADMIN_ROUTES = ["/dashboard/overview", "/dashboard/events", "/dead-letters", "/deliveries"]


def test_a_session_cookie_is_an_expiry_signed_with_the_admin_token() -> None:
    cookie = mint("token-a", now=1000.0)
    assert "token-a" not in cookie
    assert valid(cookie, "token-a", now=1000.0 + LIFETIME - 1)
    assert not valid(cookie, "token-a", now=1000.0 + LIFETIME + 1)  # expired
    assert not valid(cookie, "token-b", now=1000.0)  # the token changed: every session ends
    expires, _, mac = cookie.partition(".")
    assert not valid(f"{int(expires) + 3600}.{mac}", "token-a", now=1000.0)  # a longer life, forged
    for junk in ("", ".", "abc.def", "9" * 40 + ".x", "-1.x"):
        assert not valid(junk, "token-a", now=1000.0)


async def test_the_page_is_the_login_form_until_the_admin_signs_in() -> None:
    async with served(**PROD) as (app, client):
        for headers in (HTML, {"Accept": "application/json"}, {}):
            page = await client.get("/", headers=headers)
            assert (page.status, page.content_type) == (200, "text/html")
            text = await page.text()
            assert 'action="/dashboard/login"' in text
            assert 'id="pipelines"' not in text
            assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        page = await client.get("/", headers={**HTML, **bearer("admin-token")})
        assert 'id="pipelines"' in await page.text()
        # One `/` route: Faust's index is not mounted behind the dashboard.
        web = app.web
        routes = [r for r in web.web_app.router.routes() if r.resource and r.resource.canonical == "/"]  # type: ignore[attr-defined]
        assert sorted(r.method for r in routes) == ["GET", "HEAD"]


async def test_admin_routes_need_the_token_or_the_session_cookie() -> None:
    async with served(**PROD) as (_, client):
        for path in ADMIN_ROUTES:
            for headers in ({}, bearer("wrong"), bearer("read-token")):
                answer = await client.get(path, headers=headers)
                assert answer.status == 401, (path, headers)
                assert (await answer.json())["error"] == "unauthorized"
        answer = await client.post(f"/dead-letters/{'0' * 8}-0000-0000-0000-{'0' * 12}/replay")
        assert answer.status == 401

        wrong = await client.post("/dashboard/login", data={"token": "nope"}, allow_redirects=False)
        assert wrong.status == 401
        assert "not the admin token" in await wrong.text()
        assert COOKIE not in wrong.cookies

        signed_in = await client.post(
            "/dashboard/login", data={"token": "admin-token"}, allow_redirects=False
        )
        assert signed_in.status == 303
        assert signed_in.headers["Location"] == "/"
        set_cookie = signed_in.headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie
        assert "SameSite=Strict" in set_cookie
        assert "admin-token" not in set_cookie
        assert re.search(rf"{COOKIE}=\d+\.[0-9a-f]{{64}}", set_cookie)
        # The client's cookie jar now sends it: past the door, where the absent broker is a 503.
        answer = await client.get("/dead-letters")
        assert answer.status == 503, await answer.text()
        assert (await answer.json())["error"] == "dependency_unavailable"
        page = await client.get("/", headers=HTML)
        assert 'id="pipelines"' in await page.text()

        # A page of another origin cannot make the browser replay with the cookie.
        answer = await client.post(
            "/dead-letters/00000000-0000-0000-0000-000000000000/replay",
            headers={"Origin": "https://evil.example"},
        )
        assert answer.status == 403
        assert (await answer.json())["error"] == "forbidden"

        signed_out = await client.post("/dashboard/logout", allow_redirects=False)
        assert signed_out.status == 303
        assert (await client.get("/dead-letters")).status == 401


async def test_the_overview_shows_what_is_missing_instead_of_failing() -> None:
    async with served(**PROD) as (_, client):
        answer = await client.get("/dashboard/overview", headers=bearer("admin-token"))
        assert answer.status == 200
        body = await answer.json()
        assert set(body["problems"]) == {"broker", "dead_letters"}
        assert {card["name"] for card in body["pipelines"]} >= {"licenses", "tasks", "merchants"}
        licenses = next(card for card in body["pipelines"] if card["name"] == "licenses")
        # Agents that have had no batch are listed all the same.
        assert "licenses.records" in {agent["name"] for agent in licenses["agents"]}


async def test_bad_paging_and_ids_are_machine_readable_422s() -> None:
    async with served(**PROD) as (_, client):
        admin = bearer("admin-token")
        for path, field in [
            ("/dead-letters?limit=0", "limit"),
            ("/dead-letters?after=bm90IGEgY3Vyc29y", "after"),
            ("/dead-letters?pipeline=" + "p" * 201, "pipeline"),
            ("/deliveries?limit=abc", "limit"),
            ("/deliveries?status=lost", "status"),
        ]:
            answer = await client.get(path, headers=admin)
            assert answer.status == 422, path
            body = await answer.json()
            assert body["error"] == "validation_failed"
            assert body["errors"][0]["field"] == field
        answer = await client.post("/dead-letters/not-a-uuid/replay", headers=admin)
        assert answer.status == 422
        assert (await answer.json())["errors"][0]["field"] == "dead_letter_id"


async def test_assets_are_served_from_the_package_and_nothing_else_is() -> None:
    async with served(**PROD) as (_, client):
        css = await client.get("/dashboard/assets/dashboard.css")
        assert css.status == 200
        assert css.headers["Content-Type"].startswith("text/css")
        js = await client.get("/dashboard/assets/dashboard.js")
        assert js.status == 200
        assert "EventSource" in await js.text()
        for name in ("login.html", "..%2Fdashboard.py", "nope.js"):
            answer = await client.get(f"/dashboard/assets/{name}")
            assert answer.status == 404, name
            assert (await answer.json())["error"] == "not_found"


async def test_in_dev_without_an_admin_token_the_page_is_open() -> None:
    async with served(env="dev") as (_, client):
        page = await client.get("/", headers=HTML)
        assert 'id="pipelines"' in await page.text()
        assert (await client.get("/deliveries?limit=0")).status == 422  # past the door


async def test_without_an_admin_token_outside_dev_nobody_signs_in() -> None:
    async with served(env="test") as (_, client):  # prod refuses to start without one
        answer = await client.post("/dashboard/login", data={"token": ""}, allow_redirects=False)
        assert answer.status == 400
        assert "no admin token is configured" in await answer.text()


async def test_the_event_stream_sends_the_overview_then_the_events_the_agents_handled() -> None:
    async with served(env="dev") as (app, client):
        stream = await client.get("/dashboard/events")
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await stream.content.readuntil(b"\n\n")
        kind, _, data = first.decode().partition("\ndata: ")
        assert kind == "event: overview"
        assert "broker" in json.loads(data)["problems"]  # no broker here: said, not a failure

        message = SimpleNamespace(topic="licenses.inbound", partition=1, offset=41, key=b"c-1")
        event: Any = SimpleNamespace(message=message)
        app.recent_events.observe("licenses", "licenses.records", [event], set())
        while True:
            kind, _, data = (await stream.content.readuntil(b"\n\n")).decode().partition("\ndata: ")
            if kind == "event: events":
                break
        [seen] = json.loads(data)
        assert (seen["position"], seen["key"], seen["outcome"]) == (
            "licenses.inbound[1]@41",
            "c-1",
            "applied",
        )
        stream.close()
