"""The fuzz campaign: generated requests on every HTTP route and carts rpc, with and without credentials.

Hypothesis draws batches of requests (route, method, path parameters, query,
credentials, headers, body) against the session's real worker; none may get a
5xx, and the worker's log must show no traceback from them. Bodies are shaped
like each route's own (so many get past validation and are accepted, 202) or
are arbitrary JSON or bytes.

Strings in bodies may carry NUL: every JSON route refuses it with 422
`nul_character` (PostgreSQL text cannot hold it). They carry no lone surrogate:
one accepted would be dead-lettered by the runtime (not stall it), but the
campaign checks every accepted request lands in PostgreSQL. gRPC strings carry
neither (the carts RPCs write PostgreSQL in the call).
"""

from __future__ import annotations

import asyncio
import json
import string
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from operator import eq
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import grpc
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamapp.rpc.carts.protos import cart_pb2, cart_pb2_grpc, item_pb2, item_pb2_grpc, type_pb2
from tests.conformance import document, mismatch
from tests.integration.conftest import ADMIN, CARTS_GRPC_PORT, CARTS_JWT_SECRET, SECRET, Client
from tests.integration.stack import Worker, eventually

BATCH = 50
EXAMPLES = 200  # x BATCH = 10,000 requests
CONCURRENCY = 16
BOT = "test-bot-token"

# method, path template, body shape (None: no body of its own)
ROUTES: list[tuple[str, str, str | None]] = [
    ("POST", "/salesforce/webhook", "salesforce"),
    ("GET", "/licenses", None),
    ("GET", "/licenses/{customer_id}", None),
    ("GET", "/customers/{customer_id}/license-history", None),
    ("POST", "/create_webhook", "create_webhook"),
    ("POST", "/normalize_merchant", "transaction"),
    ("GET", "/normalize_merchant/{request_id}", None),
    ("GET", "/clients/{client_id}/requests", None),
    ("GET", "/deliveries/{subject_id}", None),
    ("POST", "/assistance", "assistance"),
    ("GET", "/assistance/{request_id}", None),
    ("GET", "/admin/assistance/routing", None),
    ("POST", "/admin/assistance/routing/reload", None),
    ("POST", "/tasks/webhook", "task"),
    ("GET", "/tasks/{task_id}", None),
    ("GET", "/tasks/{task_id}/events", None),
    ("GET", "/users/{user_id}/tasks", None),
    ("GET", "/reports/{user_id}", None),
    ("GET", "/reports/{user_id}/summary", None),
    ("GET", "/lag", None),
    ("GET", "/metrics", None),
    ("GET", "/tables/", None),
    ("GET", "/tables/{table}/{key}", None),
    ("GET", "/health", None),
    ("GET", "/ready", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
    ("GET", "/docs/{asset}", None),
    ("GET", "/", None),
    ("POST", "/dashboard/login", None),
    ("POST", "/dashboard/logout", None),
    ("GET", "/dashboard/assets/{name}", None),
    ("GET", "/dashboard/overview", None),
    ("GET", "/dashboard/events", None),
    ("GET", "/dead-letters", None),
    ("POST", "/dead-letters/{dead_letter_id}/replay", None),
    ("GET", "/deliveries", None),
]
DECLARED = {(method, route) for method, route, _ in ROUTES}

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
names = text.filter(str.strip)
uuids = st.uuids().map(str)
# Mostly near now (times far off are refused, rightly), sometimes anywhere.
times = st.one_of(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1), timezones=st.timezones()),
    st.datetimes(timezones=st.timezones()),
).map(lambda t: t.isoformat())
header_safe = st.text(string.ascii_letters + string.digits + "-_.:/+=", min_size=0, max_size=300)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid-looking value, sometimes anything JSON."""
    return st.one_of(valid, valid, valid, json_values)


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A route's own body: every field valid-looking (half of them), or each one valid-looking,
    anything or left out."""
    return st.one_of(
        st.fixed_dictionaries(fields),
        st.fixed_dictionaries({}, optional={name: either(value) for name, value in fields.items()}),
    )


SHAPES: dict[str, st.SearchStrategy[Any]] = {
    "salesforce": shaped(
        {
            "Id": uuids,
            "Name": names,
            "AccountManager": names,
            "SalesEngineerId": uuids,
            "SignedTos": st.booleans(),
            "SKU1": st.booleans(),
            "SKU2": st.booleans(),
            "SKU3": st.booleans(),
        }
    ),
    "create_webhook": shaped(
        {
            "url": st.sampled_from(
                [
                    "https://example.com/hook",
                    "http://10.0.0.1/",
                    "http://[::1]/",
                    "http://100.64.0.1/",
                    "https://example.com/a\x00b",
                ]
            )
            | text,
            "client_id": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,70}\Z") | text,
        }
    ),
    "transaction": shaped(
        {
            "date": st.dates().map(str),
            "description": names,
            "amount": st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str) | st.integers(),
        }
    ),
    "assistance": shaped(
        {
            "topic": st.sampled_from(["sales", "pricing", " Sales ", "unknown"]) | text,
            "description": names,
            "customer": shaped({"name": text, "email": st.emails()}),
            "conversation_url": st.sampled_from(["https://chat.example/c/1", "ftp://x"]) | text,
            "language": st.sampled_from(["en", "pt-BR", "xx-YYYY"]) | text,
        }
    ),
    "task": shaped(
        {
            "event": st.sampled_from(["created", "updated", "deleted"]),
            "timestamp": times,
            "metadata": shaped(
                {
                    "userId": st.sampled_from(["fuzz-user-1", "fuzz/user", "fuzz_user"]) | text,
                    "id": uuids | names,
                    "content": names,
                    "isCompleted": st.booleans(),
                }
            ),
        }
    ),
}


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None
    credential: str


# Path parameters only read: NUL is fair game there (PostgreSQL refuses it in text).
path_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


def path_params(template: str) -> st.SearchStrategy[str]:
    names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
    values = st.one_of(
        uuids,
        st.sampled_from(
            ["license-state", "cart-totals", "merchant-results", "fuzz-user-1", ".", "a\x00b", "dashboard.js"]
        ),
        path_text,
    )

    def fill(drawn: list[str]) -> str:
        path = template
        for name, value in zip(names, drawn, strict=True):
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return path

    return st.lists(values, min_size=len(names), max_size=len(names)).map(fill)


CREDENTIALS: dict[str, dict[str, str]] = {
    "webhook_secret": {"X-Webhook-Secret": SECRET},
    "none": {},
    "admin": {"Authorization": f"Bearer {ADMIN}"},
    "bot": {"Authorization": f"Bearer {BOT}"},
    "wrong_bearer": {"Authorization": "Bearer not-a-token"},
    "wrong_secret": {"X-Webhook-Secret": "not-the-secret"},
    "odd_scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
}


# What each route's caller presents (the others: none needed in dev, or the admin's).
OWN_CREDENTIAL = {
    "/salesforce/webhook": "webhook_secret",
    "/create_webhook": "admin",
    "/normalize_merchant": "merchant_client",
    "/normalize_merchant/{request_id}": "merchant_client",
    "/clients/{client_id}/requests": "merchant_client",
    "/deliveries/{subject_id}": "bot",
    "/assistance": "bot",
    "/assistance/{request_id}": "bot",
    "/admin/assistance/routing": "admin",
    "/admin/assistance/routing/reload": "admin",
    "/lag": "admin",
    "/metrics": "admin",
    "/tables/": "admin",
    "/tables/{table}/{key}": "admin",
    "/dashboard/overview": "admin",
    "/dashboard/events": "admin",
    "/dead-letters": "admin",
    "/dead-letters/{dead_letter_id}/replay": "admin",
    "/deliveries": "admin",
}


@st.composite
def calls(draw: st.DrawFn, client_headers: dict[str, str]) -> Call:
    method, route, shape = draw(st.sampled_from(ROUTES))
    # Now and then a method the route does not have. Hypothesis draws its simplest
    # choice (the first) often, in lists most of all: the first choices everywhere
    # make a request that is valid and accepted.
    if draw(st.sampled_from(range(10))) == 9:
        method = draw(st.sampled_from(["PUT", "DELETE", "PATCH", "GET", "POST"]))
    path = draw(path_params(route))
    query = draw(
        st.dictionaries(
            st.sampled_from(["limit", "after", "from", "to", "status", "token", "pipeline", "reason"]),
            text | times,
            max_size=3,
        )
    )
    credential = draw(st.sampled_from(["route's own", *CREDENTIALS, "merchant_client"]))
    if credential == "route's own":
        credential = OWN_CREDENTIAL.get(route, "none")
    headers = dict(client_headers) if credential == "merchant_client" else dict(CREDENTIALS[credential])
    if draw(st.sampled_from(range(3))) == 2:
        headers["Idempotency-Key"] = draw(header_safe)
    if draw(st.sampled_from(range(4))) == 3:
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "text/xml", "application/soap+xml", "text/plain", "x/y"])
        )
    body: bytes | None = None
    if method in ("POST", "PUT", "PATCH"):
        kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "json", "bytes", "empty"]))
        if kind == "shaped" and shape is not None:
            body = json.dumps(draw(SHAPES[shape])).encode()
        elif kind in ("shaped", "json"):
            body = json.dumps(draw(json_values)).encode()
        elif kind == "bytes":
            body = draw(st.binary(max_size=300) | st.just(b"<" + b"soapenv:Envelope" * 3))
        else:
            body = b""
    return Call(method, route, path, query, headers, body, credential)


@dataclass
class Tally:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_route: Counter[tuple[str, int]] = field(default_factory=Counter)
    by_credential: Counter[tuple[str, int]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    # Answers that differ from what /openapi.json says of their route, method and status.
    nonconforming: list[str] = field(default_factory=list)
    # Ids of what was accepted (202), by route: each must arrive where its pipeline keeps it.
    accepted: dict[str, set[str]] = field(default_factory=dict)


def test_the_campaign_covers_every_route() -> None:
    """A route added later must be added to the campaign too (the document lists every served
    route and method: tests/unit/test_openapi.py)."""
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if not method.startswith("x-")
    }
    assert documented == {(method, route) for method, route, _ in ROUTES}


@pytest.fixture(scope="module")
async def merchant_client(worker: Worker) -> dict[str, str]:
    """A registered merchants client, so that some calls carry real client credentials.

    Also waits until the worker holds its partitions, and gives it an assistance
    routing table if no test wrote one yet: without them, table routes and POST
    /assistance rightly answer 503 (retry), which is no finding.
    """
    routing_file = Path(worker.settings["STREAMAPP_ASSISTANCE_ROUTING_FILE"])
    if not routing_file.exists():  # noqa: ASYNC240 (a test fixture, once)
        # `.invalid` never resolves: the deliveries fail and are retried, nothing leaves.
        routing_file.write_text(  # noqa: ASYNC240
            '[routes]\nsales = "fuzz-slack"\n[channels.fuzz-slack]\ntype = "slack"\n'
            'webhook_url = "https://hooks.slack.invalid/fuzz"\n'
        )
    client_id = f"fuzz-{uuid.uuid4().hex[:8]}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{worker.url}/create_webhook",
            json={"url": "https://example.com/fuzz", "client_id": client_id},
            headers=CREDENTIALS["admin"],
        ) as answer,
    ):
        assert answer.status == 201, await answer.text()
        key = (await answer.json())["api_key"]
    client = Client(session := aiohttp.ClientSession(), worker.url)
    try:
        reload = await client.post(
            "/admin/assistance/routing/reload", b"", secret=None, headers=CREDENTIALS["admin"]
        )
        assert reload[0] == 200, reload
        await eventually(
            lambda: client.get("/tables/", token=ADMIN),
            lambda r: all(table["local_partitions"] for table in r[1]["tables"]),
        )
    finally:
        await session.close()
    return {"client-id": client_id, "Authorization": f"Bearer {key}"}


TALLY = Tally()

# Where an accepted request of each route ends up: the id field of the 202 and a query
# counting the ids PostgreSQL holds (settled: merchant requests no longer pending). The
# Salesforce webhook's records leave a row only when they change a customer: not counted.
ACCOUNTED = {
    "/tasks/webhook": ("event_id", "SELECT count(*) FROM task_events WHERE event_id = ANY($1::uuid[])"),
    "/assistance": (
        "request_id",
        "SELECT count(*) FROM assistance_requests WHERE request_id = ANY($1::uuid[])",
    ),
    "/normalize_merchant": (
        "request_id",
        "SELECT count(*) FROM merchant_requests WHERE request_id = ANY($1::uuid[]) AND status <> 'pending'",
    ),
}


async def send(session: aiohttp.ClientSession, base: str, call: Call, gate: asyncio.Semaphore) -> None:
    async with (
        gate,
        session.request(
            call.method,
            base + call.path,
            params=call.query,
            headers=call.headers,
            data=call.body,
            skip_auto_headers=["Content-Type"],
            # A redirect is the answer checked (the dashboard's login and logout answer 303).
            allow_redirects=False,
        ) as answer,
    ):
        if answer.content_type == "text/event-stream":
            body = await answer.content.readuntil(b"\n\n")  # a live stream: its first event
        else:
            body = await answer.read()
    TALLY.requests += 1
    TALLY.by_status[answer.status] += 1
    TALLY.by_route[(call.route, answer.status)] += 1
    TALLY.by_credential[(call.credential, answer.status)] += 1
    if answer.status == 202 and call.route in ACCOUNTED:
        TALLY.accepted.setdefault(call.route, set()).add(str(json.loads(body)[ACCOUNTED[call.route][0]]))
    if answer.status >= 500:
        TALLY.server_errors.append(f"{call.method} {call.path} -> {answer.status} {body[:200]!r}")
    # A method the route lacks gets the router's 405 (or 404 for a path that then matches
    # nothing): answers the document describes once for every route, not per operation.
    if (call.method, call.route) in DECLARED:
        problem = conforms(call, answer.status, answer.content_type, body)
        if problem is not None:
            TALLY.nonconforming.append(f"{problem} ({call.path}: {body[:200]!r})")


def conforms(call: Call, status: int, content_type: str, body: bytes) -> str | None:
    """What the document says of the answer's status and body, checked (None: it conforms)."""
    parsed: Any = body  # other content types: only whether there is one is checked
    if content_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            return f"{call.method} {call.route} -> {status}: not JSON"
    return mismatch(call.route, call.method, status, content_type, parsed)


async def test_no_5xx_from_any_request(
    worker: Worker, merchant_client: dict[str, str], db: asyncpg.Pool
) -> None:
    """At least 10,000 generated requests over every route: no 5xx, no traceback in the worker's log."""
    log_start = worker.log_path.stat().st_size
    started = time.monotonic()
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(batch=st.lists(calls(merchant_client), min_size=BATCH, max_size=BATCH))
        def campaign(batch: list[Call]) -> None:
            # Hypothesis runs sync functions: it draws in a thread, the requests go
            # out on this loop, a batch at a time.
            asyncio.run_coroutine_threadsafe(send_all(batch), loop).result()

        async def send_all(batch: list[Call]) -> None:
            await asyncio.gather(*(send(session, worker.url, call, gate) for call in batch))

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(campaign)
    elapsed = time.monotonic() - started
    with worker.log_path.open("rb") as log:
        log.seek(log_start)
        new_log = log.read().decode(errors="replace")
    print(report(elapsed))
    assert TALLY.requests >= EXAMPLES * BATCH
    assert not TALLY.server_errors, TALLY.server_errors[:20]
    kinds = sorted({problem.split(" (")[0] for problem in TALLY.nonconforming})
    assert not kinds, "\n".join([*kinds, *TALLY.nonconforming[:5]])
    assert "Traceback" not in new_log, new_log[new_log.index("Traceback") - 2000 :][:6000]
    # Every route was reached, with and without credentials.
    assert {route for route, _ in TALLY.by_route} == {route for _, route, _ in ROUTES}
    assert {credential for credential, _ in TALLY.by_credential} == {*CREDENTIALS, "merchant_client"}
    # The worker works off what was accepted before the session's next test: timing
    # assertions there assume an idle worker.
    async with aiohttp.ClientSession() as session:
        client = Client(session, worker.url)
        await eventually(
            lambda: client.get("/lag", token=ADMIN), lambda r: r[0] == 200 and r[1]["total"] == 0, timeout=180
        )
    # Every accepted task event, assistance request and merchant request was processed.
    for route, ids in sorted(TALLY.accepted.items()):
        found = await eventually(partial(db.fetchval, ACCOUNTED[route][1], list(ids)), partial(eq, len(ids)))
        assert found == len(ids), (route, found, len(ids))
    print("accounted for:", {route: len(ids) for route, ids in sorted(TALLY.accepted.items())})


def breakdown(counts: Counter[tuple[str, Any]], label: str) -> str:
    """One line per first key: `label key: {second key: count}`."""
    lines = []
    for first in sorted({key for key, _ in counts}):
        row = {second: n for (key, second), n in sorted(counts.items()) if key == first}
        lines.append(f"  {label} {first}: {row}")
    return "\n".join(lines)


def report(elapsed: float) -> str:
    statuses = dict(sorted(TALLY.by_status.items()))
    lines = [f"fuzz: {TALLY.requests} requests in {elapsed:.1f} s; by status: {statuses}"]
    lines.append(breakdown(TALLY.by_route, "route"))
    lines.append(breakdown(TALLY.by_credential, "credential"))
    return "\n".join(lines)


# --- gRPC: the carts services ------------------------------------------------------------

GRPC_CALLS = 5_000
GRPC_BATCH = 25
# Codes that say "the server failed", never "the caller did something wrong".
SERVER_CODES = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


def jwt_token(claims: dict[str, Any], key: str = CARTS_JWT_SECRET) -> str:
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, key, algorithm="HS256")


def grpc_credentials(user: str) -> dict[str, tuple[tuple[str, str], ...]]:
    def bearer(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),)

    return {
        "user": bearer(jwt_token({"sub": user})),
        "admin": bearer(jwt_token({"sub": user, "roles": ["admin"]})),
        "none": (),
        "wrong_key": bearer(jwt_token({"sub": user}, key="another-key-of-at-least-32-bytes-long!")),
        "foreign_audience": bearer(jwt_token({"sub": user, "aud": "another-service"})),
        "until_2100": bearer(jwt_token({"sub": user, "exp": 4102444800})),
        "garbage": bearer("not.a.token"),
        "basic": (("authorization", "Basic YWRtaW46YWRtaW4="),),
    }


GRPC_CREDENTIALS = [
    "user",
    "admin",
    "none",
    "wrong_key",
    "foreign_audience",
    "until_2100",
    "garbage",
    "basic",
]
grpc_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60)


@dataclass(frozen=True)
class RpcCall:
    service: str
    method: str
    message: Any
    credential: str


@st.composite
def rpc_calls(draw: st.DrawFn, items: list[str], carts: list[str]) -> RpcCall:
    item = draw(st.sampled_from(items) | uuids | grpc_text)
    cart = draw(st.sampled_from(carts) | uuids | grpc_text)
    quantity = draw(st.sampled_from([1, 2, 0, -1]) | st.integers(-(2**31), 2**31 - 1))
    price = draw(st.sampled_from([1.5, 0.0]) | st.floats())
    address = type_pb2.AddressMsg(
        line1=draw(grpc_text),
        city=draw(grpc_text),
        countryCode=draw(st.sampled_from(["DE", "BR", "de", ""]) | grpc_text),
        zipCode=draw(grpc_text),
    )
    page = type_pb2.PageRequestMsg(
        sorting=draw(st.sampled_from(["created", "price", "name", "uuid", ""]) | grpc_text),
        order=draw(st.sampled_from(["asc", "desc", ""]) | grpc_text),
        requested=draw(st.integers(-5, 2**31 - 1)),
        size=draw(st.integers(-5, 200)),
    )
    messages = {
        ("item", "Create"): item_pb2.ItemCreateMsg(
            name=draw(grpc_text), description=draw(grpc_text), price=price
        ),
        ("item", "Update"): item_pb2.ItemUpdateMsg(
            item=item_pb2.ItemMsg(uuid=item, name=draw(grpc_text), price=price)
        ),
        ("item", "Delete"): item_pb2.ItemDeleteMsg(item_uuid=draw(uuids | grpc_text)),  # never a shared item
        ("item", "Get"): item_pb2.ItemGetMsg(item_uuid=item),
        ("item", "List"): item_pb2.ItemListMsg(request=page),
        ("cart", "Get"): cart_pb2.CartGetMsg(uuid=cart),
        ("cart", "AddItem"): cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item, quantity=quantity),
        ("cart", "UpdateQuantity"): cart_pb2.CartUpdateQuantityMsg(
            cart_uuid=cart, item_uuid=item, quantity=quantity
        ),
        ("cart", "ConfigureAddress"): cart_pb2.CartConfigureAddressMsg(cart_uuid=cart, address=address),
        ("cart", "Empty"): cart_pb2.CartEmptyMsg(cart_uuid=cart),
    }
    service, method = draw(st.sampled_from(sorted(messages)))
    credential = draw(
        st.sampled_from(
            ["user", "admin", "none", "wrong_key", "foreign_audience", "until_2100", "garbage", "basic"]
        )
    )
    return RpcCall(service, method, messages[(service, method)], credential)


async def test_no_server_error_from_any_rpc(worker: Worker) -> None:
    """Generated calls of every carts rpc, with and without valid tokens: no server-side status."""
    users = [str(uuid.uuid4()) for _ in range(3)]
    tally: Counter[tuple[str, str]] = Counter()
    by_credential: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{CARTS_GRPC_PORT}") as channel:
        stubs: dict[str, Any] = {
            "item": item_pb2_grpc.ItemStub(channel),  # type: ignore[no-untyped-call]
            "cart": cart_pb2_grpc.CartStub(channel),  # type: ignore[no-untyped-call]
        }
        admin = grpc_credentials(users[0])["admin"]
        items = [
            (
                await stubs["item"].Create(
                    item_pb2.ItemCreateMsg(name=f"fuzz {n}", price=1.0), metadata=admin
                )
            ).uuid
            for n in range(3)
        ]
        carts = [str(uuid.uuid4()) for _ in range(3)]

        async def call(rpc: RpcCall, user: str) -> None:
            metadata = grpc_credentials(user)[rpc.credential]
            async with gate:
                try:
                    await getattr(stubs[rpc.service], rpc.method)(rpc.message, metadata=metadata, timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if code in SERVER_CODES:
                        failures.append(
                            f"{rpc.service}.{rpc.method} {rpc.credential}: {code} {exc.details()}"
                        )
            tally[(f"{rpc.service}.{rpc.method}", code.name)] += 1
            by_credential[(rpc.credential, code.name)] += 1

        @settings(
            max_examples=GRPC_CALLS // GRPC_BATCH,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            batch=st.lists(
                st.tuples(rpc_calls(items, carts), st.sampled_from(users)),
                min_size=GRPC_BATCH,
                max_size=GRPC_BATCH,
            )
        )
        def campaign(batch: list[tuple[RpcCall, str]]) -> None:
            asyncio.run_coroutine_threadsafe(send_all(batch), loop).result()

        async def send_all(batch: list[tuple[RpcCall, str]]) -> None:
            await asyncio.gather(*(call(rpc, user) for rpc, user in batch))

        loop = asyncio.get_running_loop()
        started = time.monotonic()
        await asyncio.to_thread(campaign)
    print(f"fuzz gRPC: {sum(tally.values())} calls in {time.monotonic() - started:.1f} s")
    print(breakdown(tally, "rpc"))
    print(breakdown(by_credential, "credential"))
    assert sum(tally.values()) >= GRPC_CALLS
    assert not failures, failures[:20]
    # A token that is missing, forged, for another audience or too long-lived opens nothing.
    for credential in GRPC_CREDENTIALS[2:]:
        assert {code for (k, code), _ in by_credential.items() if k == credential} == {"UNAUTHENTICATED"}
