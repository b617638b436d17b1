"""The OpenAPI document: every served route and method in it (and nothing else), valid OpenAPI 3.1."""

from __future__ import annotations

import re
from typing import Any

import pytest
from faust.web import Request, Response
from openapi_spec_validator import validate

from streamapp.app import Role, StreamApp, create_app
from streamapp.errors import StreamappError
from streamapp.routes import PUBLIC, Operation, Reply
from streamapp.settings import Settings
from streamapp.web.base import JsonView
from streamapp.web.openapi import ErrorReply, openapi_document
from tests.conformance import document
from tests.unit.webapp import NOWHERE, PROD, bearer, served

# Faust gives every view a HEAD that answers like its GET; the document leaves them out.
UNDOCUMENTED_METHODS = {"HEAD"}


def build(role: Role = "worker") -> StreamApp:
    return create_app(Settings(**NOWHERE), role=role)  # type: ignore[arg-type]


def served_routes(app: StreamApp) -> set[tuple[str, str]]:
    """What the aiohttp router answers once the server is initialised (Faust's blueprints included)."""
    web: Any = app.web
    web.init_server()  # what the worker does at start: mounts Faust's blueprints
    return {
        (route.resource.canonical, route.method)
        for route in web.web_app.router.routes()
        if route.resource is not None and route.method not in UNDOCUMENTED_METHODS
    }


def documented(doc: dict[str, Any], served_by: str | None = None) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if not method.startswith("x-") and (served_by is None or served_by in item["x-served-by"])
    }


def test_every_served_route_and_method_is_documented_and_nothing_else() -> None:
    app = build()
    doc = openapi_document(app.routes.values(), title="t", version="0")
    assert served_routes(app) == documented(doc)


def test_faust_builtin_pages_are_not_served() -> None:
    """found: Faust's /table/{name}/{key}/ answered anyone with any table's values; /router/ the topology."""
    routes = served_routes(build())
    paths = {path for path, _ in routes}
    assert not {p for p in paths if p.startswith(("/table/", "/router", "/graph", "/performance"))}
    # `/` is the dashboard's, once: Faust's index is not mounted behind it.
    assert {method for path, method in routes if path == "/"} == {"GET"}


async def test_faust_table_pages_answer_404_without_a_token() -> None:
    async with served(**PROD) as (app, client):
        web: Any = app.web
        web.init_server()
        for path in ("/table/", "/table/cart-totals/", "/table/cart-totals/some-user/", "/router/"):
            answer = await client.get(path)
            assert answer.status == 404, path
            assert (await answer.json())["error"] == "not_found"


async def test_the_ingest_role_serves_what_the_document_says() -> None:
    """Each declared route either answers on an ingest process or says `not_an_ingest_route`."""
    doc = document()
    on_ingest = {path for path, _ in documented(doc, "ingest")}
    assert {"/health", "/ready", "/metrics", "/openapi.json"} <= on_ingest
    async with served(**PROD, role="ingest") as (_, client):
        for path, method in sorted(documented(doc)):
            url = re.sub(r"\{[^}]+\}", "x", path)
            answer = await client.request(method, url)
            refused = answer.status == 404 and (await answer.json())["error"] == "not_an_ingest_route"
            assert refused == (path not in on_ingest), (method, path, answer.status)


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on the first problem


def test_every_operation_says_who_may_call_it() -> None:
    doc = document()
    schemes = set(doc["components"]["securitySchemes"])
    for path, method in documented(doc):
        operation = doc["paths"][path][method.lower()]
        assert "Who may call it" in operation["description"], (method, path)
        for requirement in operation["security"]:
            assert set(requirement) <= schemes
        # A door has its 401 (JSON `unauthorized`); an open route has none, but for the login form's
        # own answer to a wrong token (the form again, in HTML).
        unauthorized = "application/json" in operation["responses"].get("401", {}).get("content", {})
        assert unauthorized == bool(operation["security"]), (method, path)
    login = doc["paths"]["/dashboard/login"]["post"]
    assert (login["security"], set(login["responses"]["401"]["content"])) == ([], {"text/html"})


def test_the_dashboard_session_cookie_is_documented_beside_the_admin_token() -> None:
    from streamapp.web.session import COOKIE

    doc = document()
    cookie = doc["components"]["securitySchemes"]["dashboardSession"]
    assert (cookie["in"], cookie["name"]) == ("cookie", COOKIE)
    for path, method in [
        ("/dashboard/overview", "get"),
        ("/dashboard/events", "get"),
        ("/dead-letters", "get"),
        ("/dead-letters/{dead_letter_id}/replay", "post"),
        ("/deliveries", "get"),
    ]:
        operation = doc["paths"][path][method]
        assert operation["security"] == [{"adminToken": []}, {"dashboardSession": []}], path
    for path, method in [("/", "get"), ("/dashboard/login", "post"), ("/dashboard/assets/{name}", "get")]:
        assert doc["paths"][path][method]["security"] == [], path
    events = doc["paths"]["/dashboard/events"]["get"]["responses"]["200"]["content"]
    assert set(events) == {"text/event-stream"}
    # Every list pages the same way: `after` (the previous page's `next`) and `limit`.
    for path in (
        "/licenses",
        "/clients/{client_id}/requests",
        "/users/{user_id}/tasks",
        "/dead-letters",
        "/deliveries",
    ):
        names = {p["name"] for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        assert {"after", "limit"} <= names, path
        assert "offset" not in names, path
        reply = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        model = reply["$ref"].rsplit("/", 1)[-1]
        assert "next" in doc["components"]["schemas"][model]["properties"], path


def test_error_replies_name_their_reason() -> None:
    doc = document()
    body = doc["paths"]["/licenses"]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert body["properties"]["error"]["enum"] == ["validation_failed"]
    webhook = doc["paths"]["/salesforce/webhook"]["post"]["responses"]
    assert {"400", "401", "403", "413", "422", "503"} <= set(webhook)
    assert webhook["422"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"] == [
        "idempotency_key_reused",
        "validation_failed",
    ]


def all_errors(cls: type[StreamappError] = StreamappError) -> list[type[StreamappError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in all_errors(direct))]


@pytest.mark.parametrize("error", all_errors(), ids=lambda e: e.__name__)
def test_every_error_body_has_the_documented_shape(error: type[StreamappError]) -> None:
    exc = error.__new__(error)
    StreamappError.__init__(exc, "detail", errors=[{"field": "a", "type": "b", "message": "c"}])
    ErrorReply.model_validate(exc.to_json())


def test_request_bodies_and_query_parameters_come_from_the_views_models() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    task = doc["paths"]["/tasks/webhook"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert task == {"$ref": "#/components/schemas/TaskWebhook"}
    assert set(schemas["TaskWebhook"]["properties"]) == {"event", "timestamp", "metadata"}
    parameters = {p["name"]: p for p in doc["paths"]["/licenses"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["maximum"] == 1000
    assert parameters["limit"]["schema"]["minimum"] == 1
    assert not parameters["after"]["required"]
    user_tasks = doc["paths"]["/users/{user_id}/tasks"]["get"]["parameters"]
    assert {(p["name"], p["in"]) for p in user_tasks} == {
        ("user_id", "path"),
        ("after", "query"),
        ("limit", "query"),
        ("status", "query"),
    }


def test_a_view_cannot_serve_a_method_it_does_not_declare() -> None:
    app = build()

    class Undeclared(JsonView):
        async def get(self, request: Request) -> Response:
            return self.json({})

        async def post(self, request: Request) -> Response:
            return self.json({})

    with pytest.raises(TypeError, match="implements"):
        app.route("/x", tag="t", get=Operation("x", PUBLIC, {200: Reply("x")}))(Undeclared)
    with pytest.raises(TypeError, match=r"StreamApp\.route"):
        app.page("/y")
    assert "/x" not in app.routes


async def test_openapi_json_needs_the_read_or_admin_token_outside_dev() -> None:
    async with served(**PROD) as (_, client):
        assert (await client.get("/openapi.json")).status == 401
        for token in ("read-token", "admin-token"):
            answer = await client.get("/openapi.json", headers=bearer(token))
            assert answer.status == 200
            assert (await answer.json())["openapi"] == "3.1.0"


async def test_openapi_json_is_open_in_dev_without_a_read_token() -> None:
    async with served() as (_, client):
        answer = await client.get("/openapi.json")
        assert answer.status == 200
        assert set((await answer.json())["paths"]) == set(document()["paths"])


async def test_docs_page_and_every_asset_it_loads_are_served_from_the_package() -> None:
    async with served(**PROD) as (_, client):
        page = await client.get("/docs")
        assert page.status == 200
        assert page.content_type == "text/html"
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        html = await page.text()
        linked = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert linked, html
        assert not [url for url in linked if "//" in url], "the page must load nothing from elsewhere"
        for url in linked:
            asset = await client.get("/" + url)
            assert asset.status == 200, url
            assert len(await asset.read()) > 100, url
        script = await (await client.get("/docs/docs.js")).text()
        assert "validatorUrl: null" in script  # Swagger UI would send the document to an online validator
        missing = await client.get("/docs/..%2Fpyproject.toml")
        assert (missing.status, (await missing.json())["error"]) == (404, "not_found")


def test_the_packaged_swagger_ui_renders_openapi_3_1() -> None:
    """Swagger UI before 5.0 refuses 3.1 documents: the packaged copy must be 5 or newer."""
    from streamapp.web.docs import static_file

    bundle = static_file("swagger-ui/swagger-ui-bundle.js")
    assert b"OpenAPI31" in bundle or b"oas31" in bundle
    assert b"Apache" in static_file("swagger-ui/LICENSE")


async def test_a_process_not_ready_answers_as_documented() -> None:
    """found (merging s17-prod): /ready answered `starting` and `waiting_for`, which the document lacked."""
    from tests.conformance import mismatch

    async with served(**PROD) as (_, client):
        answer = await client.get("/ready")  # no broker, no database here
        body = await answer.json()
        assert (answer.status, body["status"]) == (503, "starting")
        assert body["waiting_for"]
        assert mismatch("/ready", "GET", answer.status, answer.content_type, body) is None


def test_routes_that_publish_document_the_topic_gate() -> None:
    """found (merging s17-prod): a webhook answers 503 `not_ready` until its topic exists; undocumented."""
    doc = document()
    for path in ("/salesforce/webhook", "/tasks/webhook", "/assistance", "/normalize_merchant"):
        schema = doc["paths"][path]["post"]["responses"]["503"]["content"]["application/json"]["schema"]
        assert "not_ready" in schema["properties"]["error"]["enum"], path
