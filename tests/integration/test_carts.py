"""Carts over gRPC against the real worker: a client generated from the same protos, every rpc and status."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp
import asyncpg
import grpc
import jwt
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.empty_pb2 import Empty
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from streamapp.app import create_app
from streamapp.config.carts import CartsSettings
from streamapp.embedded import free_port
from streamapp.rpc.carts.protos import cart_pb2, cart_pb2_grpc, item_pb2, item_pb2_grpc, type_pb2
from streamapp.rpc.carts.server import CartsServer
from streamapp.rules.carts import CartEvent
from streamapp.stores.carts.outbox import OutboxRelay
from streamapp.topics import pipeline_topic
from tests.integration.conftest import ADMIN_AUTH, CARTS_GRPC_PORT, CARTS_JWT_SECRET
from tests.integration.stack import Services, Worker, eventually

T = TypeVar("T")
Code = grpc.StatusCode
ADMIN = uuid.uuid4()


def token(sub: uuid.UUID | str, *roles: str, key: str = CARTS_JWT_SECRET, **claims: Any) -> str:
    body = {"sub": str(sub), "roles": list(roles), "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, key, algorithm="HS256")


def auth(sub: uuid.UUID | str, *roles: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token(sub, *roles)}"),)


class Api:
    """The generated stubs, with a caller's token attached."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        # The generated gRPC stubs are untyped (protoc writes no hints for them).
        self.items = item_pb2_grpc.ItemStub(channel)  # type: ignore[no-untyped-call]
        self.carts = cart_pb2_grpc.CartStub(channel)  # type: ignore[no-untyped-call]
        self.admin = auth(ADMIN, "admin")

    async def create_item(
        self, name: str = "Mug", price: float = 9.5, description: str = ""
    ) -> item_pb2.ItemMsg:
        msg = item_pb2.ItemCreateMsg(name=name, description=description, price=price)
        item: item_pb2.ItemMsg = await self.items.Create(msg, metadata=self.admin)
        return item

    async def add(self, user: uuid.UUID, cart: str, item: str, quantity: int = 1) -> cart_pb2.CartMsg:
        msg = cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item, quantity=quantity)
        result: cart_pb2.CartAddItemResultMsg = await self.carts.AddItem(msg, metadata=auth(user))
        return result.result

    async def get(self, user: uuid.UUID, cart: str) -> cart_pb2.CartMsg:
        result: cart_pb2.CartGetResultMsg = await self.carts.Get(
            cart_pb2.CartGetMsg(uuid=cart), metadata=auth(user)
        )
        return result.result


def in_process_server(services: Services) -> tuple[CartsServer, Any]:
    settings = CartsSettings(
        broker_url=services.broker_url,
        database_url=services.database_url,
        carts_grpc_port=free_port(),
        carts_jwt_secret=CARTS_JWT_SECRET,
    )
    app = create_app(settings, pipelines=[])
    return CartsServer(app, OutboxRelay(app, pipeline_topic(app, "carts.events"))), app


@pytest.fixture(scope="module")
async def in_process(services: Services, worker: Worker) -> AsyncIterator[int]:
    """The same server in this process, on the same PostgreSQL (the worker applied the migrations).

    Every rpc test runs against both: the worker is the deployment; this one is
    measured by coverage even though the crash tests SIGKILL the worker (a killed
    process writes no coverage data). The worker's relay publishes its outbox rows.
    """
    server, app = in_process_server(services)
    await server.start()
    yield server.port
    await server.stop()
    await app.db.stop()


async def open_api(port: int) -> AsyncIterator[Api]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Api(channel)


@pytest.fixture(params=["worker", "in-process"])
async def api(request: pytest.FixtureRequest, worker: Worker, in_process: int) -> AsyncIterator[Api]:
    async for opened in open_api(CARTS_GRPC_PORT if request.param == "worker" else in_process):
        yield opened


@pytest.fixture
async def worker_api(worker: Worker) -> AsyncIterator[Api]:
    async for opened in open_api(CARTS_GRPC_PORT):
        yield opened


async def fails(code: grpc.StatusCode, call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() is code, info.value.details()
    return info.value


def trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    # grpc-stubs types it like the sync RpcError's (a tuple of _Metadatum); grpc.aio returns
    # its Metadata, which iterates (key, value) pairs, or None.
    metadata = cast("grpc.aio.Metadata | None", error.trailing_metadata())
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return None


def new_id() -> str:
    return str(uuid.uuid4())


# --- items ---------------------------------------------------------------------------


async def test_item_lifecycle(api: Api) -> None:
    created = await api.create_item("  Blue mug ", 12.99, "350 ml")
    assert (created.name, created.description, created.price) == ("Blue mug", "350 ml", 12.99)
    uuid.UUID(created.uuid)
    assert created.created.seconds > 0
    assert created.created == created.updated
    user = auth(uuid.uuid4())
    got = await api.items.Get(item_pb2.ItemGetMsg(item_uuid=created.uuid), metadata=user)
    assert got.item == created
    change = item_pb2.ItemMsg(uuid=created.uuid, name="Red mug", description="", price=14.0)
    updated = await api.items.Update(item_pb2.ItemUpdateMsg(item=change), metadata=api.admin)
    assert (updated.name, updated.description, updated.price) == ("Red mug", "", 14.0)
    assert updated.created == created.created
    assert updated.updated.ToDatetime() > created.updated.ToDatetime()
    deleted = await api.items.Delete(item_pb2.ItemDeleteMsg(item_uuid=created.uuid), metadata=api.admin)
    assert deleted == Empty()
    for call in (
        api.items.Get(item_pb2.ItemGetMsg(item_uuid=created.uuid), metadata=user),
        api.items.Delete(item_pb2.ItemDeleteMsg(item_uuid=created.uuid), metadata=api.admin),
        api.items.Update(item_pb2.ItemUpdateMsg(item=change), metadata=api.admin),
    ):
        error = await fails(Code.NOT_FOUND, call)
        assert trailer(error, "error-reason") == "not_found"


async def test_item_validation(api: Api) -> None:
    for msg, field in (
        (item_pb2.ItemCreateMsg(name="", price=1), "name"),
        (item_pb2.ItemCreateMsg(name="  ", price=1), "name"),
        (item_pb2.ItemCreateMsg(name="x", price=-0.01), "price"),
        (item_pb2.ItemCreateMsg(name="x", price=math.nan), "price"),
    ):
        error = await fails(Code.INVALID_ARGUMENT, api.items.Create(msg, metadata=api.admin))
        assert trailer(error, "error-reason") == "validation_failed"
        assert [e["field"] for e in json.loads(trailer(error, "error-fields") or "[]")] == [field]
    item = await api.create_item()
    bad_update = item_pb2.ItemMsg(uuid=item.uuid, name="ok", price=-1)
    await fails(
        Code.INVALID_ARGUMENT, api.items.Update(item_pb2.ItemUpdateMsg(item=bad_update), metadata=api.admin)
    )
    await fails(
        Code.INVALID_ARGUMENT, api.items.Get(item_pb2.ItemGetMsg(item_uuid="nope"), metadata=api.admin)
    )
    await fails(
        Code.INVALID_ARGUMENT, api.items.Delete(item_pb2.ItemDeleteMsg(item_uuid=""), metadata=api.admin)
    )


async def test_authentication_and_admin_role(api: Api) -> None:
    get = item_pb2.ItemGetMsg(item_uuid=(await api.create_item()).uuid)
    user = uuid.uuid4()
    for metadata in (
        (),
        (("authorization", "Bearer not-a-jwt"),),
        (("authorization", f"Basic {token(user)}"),),
        (("authorization", f"Bearer {token(user, key='another-secret-that-is-32-bytes-long')}"),),
        (("authorization", f"Bearer {token(user, exp=int(time.time()) - 3600)}"),),
        (("authorization", f"Bearer {token('not-a-uuid')}"),),
    ):
        error = await fails(Code.UNAUTHENTICATED, api.items.Get(get, metadata=metadata))
        assert trailer(error, "error-reason") == "unauthorized"
    # Any valid token reads the catalogue; writing it needs the admin role.
    await api.items.Get(get, metadata=auth(user))
    await api.items.List(item_pb2.ItemListMsg(), metadata=auth(user))
    change = item_pb2.ItemMsg(uuid=get.item_uuid, name="x", price=1)
    for call in (
        api.items.Create(item_pb2.ItemCreateMsg(name="x", price=1), metadata=auth(user)),
        api.items.Update(item_pb2.ItemUpdateMsg(item=change), metadata=auth(user, "shopper")),
        api.items.Delete(item_pb2.ItemDeleteMsg(item_uuid=get.item_uuid), metadata=auth(user)),
    ):
        error = await fails(Code.PERMISSION_DENIED, call)
        assert trailer(error, "error-reason") == "forbidden"
    # An unauthenticated call is refused before its arguments are looked at.
    await fails(Code.UNAUTHENTICATED, api.carts.AddItem(cart_pb2.CartAddItemMsg(quantity=-1)))


async def test_jwt_edges_another_users_cart_answers_like_an_unknown_one(api: Api) -> None:
    """Finding 6: another user's cart answered PERMISSION_DENIED, an unknown one NOT_FOUND."""
    owner, other, cart = uuid.uuid4(), uuid.uuid4(), new_id()
    item = await api.create_item()
    await api.add(owner, cart, item.uuid)
    theirs = await fails(Code.NOT_FOUND, api.carts.Get(cart_pb2.CartGetMsg(uuid=cart), metadata=auth(other)))
    unknown = new_id()
    nowhere = await fails(
        Code.NOT_FOUND, api.carts.Get(cart_pb2.CartGetMsg(uuid=unknown), metadata=auth(other))
    )
    assert trailer(theirs, "error-reason") == trailer(nowhere, "error-reason") == "not_found"
    assert (theirs.details() or "").replace(cart, "?") == (nowhere.details() or "").replace(unknown, "?")


async def test_list_pages(api: Api, db: asyncpg.Pool) -> None:
    for i in range(7):
        await api.create_item(f"paging {i}", float(i))
    total = await db.fetchval("SELECT count(*) FROM items")
    expected = {str(row["uuid"]) for row in await db.fetch("SELECT uuid FROM items")}
    user = auth(uuid.uuid4())

    async def page(**request: Any) -> item_pb2.ItemListResultMsg:
        msg = item_pb2.ItemListMsg(request=type_pb2.PageRequestMsg(**request))
        result: item_pb2.ItemListResultMsg = await api.items.List(msg, metadata=user)
        return result

    first = await page()  # every default: created, asc, page 1, 20 a page
    assert (first.pager.sorting, first.pager.order, first.pager.current) == ("created", "asc", 1)
    assert first.pager.total == math.ceil(total / 20)
    assert len(first.items) == min(20, total)
    seen: list[str] = []
    pages = math.ceil(total / 3)
    for number in range(1, pages + 1):
        result = await page(sorting="uuid", order="desc", requested=number, size=3)
        assert (result.pager.current, result.pager.total) == (number, pages)
        seen.extend(item.uuid for item in result.items)
    assert seen == sorted(expected, reverse=True)  # stable order, nothing twice, nothing missing
    beyond = await page(requested=pages + 5, size=3)
    assert (list(beyond.items), beyond.pager.current, beyond.pager.total) == ([], pages + 5, pages)
    by_price = await page(sorting="price", order="DESC", size=100)
    prices = [item.price for item in by_price.items]
    assert prices == sorted(prices, reverse=True)
    assert len(by_price.items) == min(100, total)
    for bad in (
        {"size": 101},
        {"size": -1},
        {"requested": -1},
        {"sorting": "description"},
        {"sorting": "price; DROP TABLE items"},
        {"order": "up"},
    ):
        error = await fails(Code.INVALID_ARGUMENT, page(**bad))
        assert trailer(error, "error-reason") == "validation_failed", bad


# --- carts ---------------------------------------------------------------------------


async def test_cart_flow(api: Api) -> None:
    user, cart = uuid.uuid4(), new_id()
    mug, tea = await api.create_item("Mug", 9.5), await api.create_item("Tea", 0.1)
    created = await api.add(user, cart, mug.uuid, 2)  # an unknown cart uuid: created for the caller
    assert (created.uuid, created.user_uuid) == (cart, str(user))
    assert [(e.item.uuid, e.quantity) for e in created.entries] == [(mug.uuid, 2)]
    assert created.price_total == 19.0
    again = await api.add(user, cart, mug.uuid, 1)  # the same item adds to its quantity
    assert [(e.item.uuid, e.quantity) for e in again.entries] == [(mug.uuid, 3)]
    both = await api.add(user, cart, tea.uuid, 3)
    assert [(e.item.name, e.quantity) for e in both.entries] == [("Mug", 3), ("Tea", 3)]
    assert both.price_total == 28.8  # exact: 3 x 9.5 + 3 x 0.1
    set_to = cart_pb2.CartUpdateQuantityMsg(cart_uuid=cart, item_uuid=mug.uuid, quantity=1)
    updated = (await api.carts.UpdateQuantity(set_to, metadata=auth(user))).result
    assert [e.quantity for e in updated.entries] == [1, 3]
    removed = cart_pb2.CartUpdateQuantityMsg(cart_uuid=cart, item_uuid=tea.uuid, quantity=0)
    after = (await api.carts.UpdateQuantity(removed, metadata=auth(user))).result
    assert [e.item.uuid for e in after.entries] == [mug.uuid]
    # Removing what is not there changes nothing and is no error.
    again_removed = (await api.carts.UpdateQuantity(removed, metadata=auth(user))).result
    assert again_removed == after
    address = type_pb2.AddressMsg(line1="Main St 1", city="Berlin", zipCode="10115", countryCode="de")
    configure = cart_pb2.CartConfigureAddressMsg(cart_uuid=cart, address=address)
    configured = (await api.carts.ConfigureAddress(configure, metadata=auth(user))).result
    stored = configured.configuration.address
    assert (stored.line1, stored.city, stored.zipCode, stored.countryCode) == (
        "Main St 1",
        "Berlin",
        "10115",
        "DE",
    )
    uuid.UUID(stored.UUID)
    assert stored.created.seconds > 0
    # Re-configuring keeps the address's identity and creation time.
    moved = cart_pb2.CartConfigureAddressMsg(
        cart_uuid=cart, address=type_pb2.AddressMsg(line1="B 2", city="Kiel", countryCode="DE")
    )
    moved_to = (await api.carts.ConfigureAddress(moved, metadata=auth(user))).result.configuration.address
    assert (moved_to.UUID, moved_to.created, moved_to.city) == (stored.UUID, stored.created, "Kiel")
    got = await api.get(user, cart)
    assert got.configuration.address == moved_to
    assert got.updated.ToDatetime() >= got.created.ToDatetime()
    emptied = (await api.carts.Empty(cart_pb2.CartEmptyMsg(cart_uuid=cart), metadata=auth(user))).result
    assert (list(emptied.entries), emptied.price_total) == ([], 0.0)
    assert emptied.configuration.address == moved_to
    assert await api.get(user, cart) == emptied


async def test_cart_errors(api: Api) -> None:
    owner, other, cart = uuid.uuid4(), uuid.uuid4(), new_id()
    item = await api.create_item()
    await api.add(owner, cart, item.uuid)
    address = type_pb2.AddressMsg(line1="x", city="y", countryCode="DE")
    # Another user's cart: not theirs to see or change, nor to learn that it exists.
    for call in (
        api.carts.Get(cart_pb2.CartGetMsg(uuid=cart), metadata=auth(other)),
        api.carts.AddItem(
            cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item.uuid, quantity=1), metadata=auth(other)
        ),
        api.carts.UpdateQuantity(
            cart_pb2.CartUpdateQuantityMsg(cart_uuid=cart, item_uuid=item.uuid, quantity=5),
            metadata=auth(other),
        ),
        api.carts.Empty(cart_pb2.CartEmptyMsg(cart_uuid=cart), metadata=auth(other)),
        api.carts.ConfigureAddress(
            cart_pb2.CartConfigureAddressMsg(cart_uuid=cart, address=address), metadata=auth(other)
        ),
    ):
        await fails(Code.NOT_FOUND, call)
    assert [e.quantity for e in (await api.get(owner, cart)).entries] == [1]  # untouched
    unknown = new_id()
    for call in (
        api.carts.Get(cart_pb2.CartGetMsg(uuid=unknown), metadata=auth(owner)),
        api.carts.Empty(cart_pb2.CartEmptyMsg(cart_uuid=unknown), metadata=auth(owner)),
        api.carts.ConfigureAddress(
            cart_pb2.CartConfigureAddressMsg(cart_uuid=unknown, address=address), metadata=auth(owner)
        ),
        api.carts.UpdateQuantity(
            cart_pb2.CartUpdateQuantityMsg(cart_uuid=unknown, item_uuid=item.uuid, quantity=1),
            metadata=auth(owner),
        ),
        api.carts.AddItem(
            cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=new_id(), quantity=1), metadata=auth(owner)
        ),
    ):
        await fails(Code.NOT_FOUND, call)
    for msg in (
        cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item.uuid, quantity=-1),
        cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item.uuid, quantity=0),
        cart_pb2.CartAddItemMsg(cart_uuid="x", item_uuid=item.uuid, quantity=1),
    ):
        await fails(Code.INVALID_ARGUMENT, api.carts.AddItem(msg, metadata=auth(owner)))
    negative = cart_pb2.CartUpdateQuantityMsg(cart_uuid=cart, item_uuid=item.uuid, quantity=-2)
    await fails(Code.INVALID_ARGUMENT, api.carts.UpdateQuantity(negative, metadata=auth(owner)))
    no_country = cart_pb2.CartConfigureAddressMsg(
        cart_uuid=cart, address=type_pb2.AddressMsg(line1="x", city="y")
    )
    error = await fails(Code.INVALID_ARGUMENT, api.carts.ConfigureAddress(no_country, metadata=auth(owner)))
    assert "address.countryCode" in (trailer(error, "error-fields") or "")
    # Valid requests the cart's state does not allow.
    absent = await api.create_item("absent")
    not_in_cart = cart_pb2.CartUpdateQuantityMsg(cart_uuid=cart, item_uuid=absent.uuid, quantity=2)
    await fails(Code.FAILED_PRECONDITION, api.carts.UpdateQuantity(not_in_cart, metadata=auth(owner)))
    await api.add(owner, cart, item.uuid, 9_999)
    error = await fails(Code.FAILED_PRECONDITION, api.add(owner, cart, item.uuid, 1))
    assert trailer(error, "error-reason") == "failed_precondition"
    assert [e.quantity for e in (await api.get(owner, cart)).entries] == [
        10_000
    ]  # the refused call left no trace


async def test_item_changes_reach_carts(api: Api, db: asyncpg.Pool) -> None:
    user, cart = uuid.uuid4(), new_id()
    cheap, gone = await api.create_item("Pen", 1.25), await api.create_item("Ink", 3.0)
    await api.add(user, cart, cheap.uuid, 4)
    await api.add(user, cart, gone.uuid, 1)
    assert (await api.get(user, cart)).price_total == 8.0
    repriced = item_pb2.ItemMsg(uuid=cheap.uuid, name="Pen", price=2.5)
    await api.items.Update(item_pb2.ItemUpdateMsg(item=repriced), metadata=api.admin)
    assert (await api.get(user, cart)).price_total == 13.0  # from the current prices
    await api.items.Delete(item_pb2.ItemDeleteMsg(item_uuid=gone.uuid), metadata=api.admin)
    after = await api.get(user, cart)
    assert [(e.item.uuid, e.item.price) for e in after.entries] == [(cheap.uuid, 2.5)]
    assert after.price_total == 10.0
    kinds = await db.fetch(
        "SELECT convert_from(payload, 'UTF8')::jsonb->>'type' AS kind FROM cart_outbox "
        "WHERE cart_uuid = $1 ORDER BY id",
        uuid.UUID(cart),
    )
    assert [row["kind"] for row in kinds] == [
        "cart.item_added",
        "cart.item_added",
        "cart.item_updated",
        "cart.item_removed",
    ]


async def test_concurrent_add_item_loses_nothing(api: Api, db: asyncpg.Pool) -> None:
    user, cart = uuid.uuid4(), new_id()
    item = await api.create_item("Sticker", 0.5)
    # Twenty first calls on a cart that does not exist yet: one creates it, all count.
    await asyncio.gather(*(api.add(user, cart, item.uuid, 1) for _ in range(20)))
    got = await api.get(user, cart)
    assert [e.quantity for e in got.entries] == [20]
    assert got.price_total == 10.0
    versions = await db.fetch(
        "SELECT (convert_from(payload, 'UTF8')::jsonb->>'version')::int AS v FROM cart_outbox "
        "WHERE cart_uuid = $1 ORDER BY id",
        uuid.UUID(cart),
    )
    assert [row["v"] for row in versions] == list(range(1, 21))  # one event per change, in commit order


async def test_health_and_reflection(api: Api) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", "item.Item", "cart.Cart"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol="cart.Cart"))
    await call.done_writing()
    answers = [answer async for answer in call]
    names = {service.name for service in answers[0].list_services_response.service}
    assert {"item.Item", "cart.Cart", "grpc.health.v1.Health"} <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto  # clients can discover the contract


async def test_database_gone_is_unavailable(services: Services, worker: Worker) -> None:
    server, app = in_process_server(services)
    await server.start()
    try:
        await app.db.stop()  # the pool is gone, as when PostgreSQL cannot be reached
        async for api in open_api(server.port):
            error = await fails(Code.UNAVAILABLE, api.get(uuid.uuid4(), new_id()))
            assert trailer(error, "error-reason") == "dependency_unavailable"
    finally:
        await server.stop()


# --- the stream side ----------------------------------------------------------------------


async def read_events(
    services: Services, carts: set[str], expected: int, timeout: float = 60.0
) -> list[CartEvent]:
    """Every `carts.events` message of the given carts, from the beginning, until `expected` distinct ids."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=services.broker_url.removeprefix("kafka://"), enable_auto_commit=False
    )
    await consumer.start()
    found: list[CartEvent] = []
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = consumer.partitions_for_topic("carts.events") or set()
        consumer.assign([TopicPartition("carts.events", p) for p in partitions])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while len({e.event_id for e in found}) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batches.values():
                for message in messages:
                    if message.key is not None and message.key.decode() in carts:
                        event = CartEvent.decode(message.value)
                        assert message.key.decode() == str(event.cart_uuid)
                        found.append(event)
    finally:
        await consumer.stop()
    return found


async def totals_of(worker: Worker, user: uuid.UUID) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.url}/tables/cart-totals/{user}", headers=ADMIN_AUTH) as answer,
    ):
        return await answer.json() if answer.status == 200 else None


async def test_events_reach_the_topic_and_the_totals_table(
    worker_api: Api, services: Services, worker: Worker, db: asyncpg.Pool
) -> None:
    api = worker_api
    user, first, second = uuid.uuid4(), new_id(), new_id()
    item = await api.create_item("Book", 20.0)
    await api.add(user, first, item.uuid, 2)
    await api.add(user, second, item.uuid, 1)
    await api.carts.Empty(cart_pb2.CartEmptyMsg(cart_uuid=second), metadata=auth(user))
    await api.add(user, first, item.uuid, 1)
    ids = await db.fetch(
        "SELECT event_id FROM cart_outbox WHERE cart_uuid = ANY($1::uuid[]) ORDER BY id",
        [uuid.UUID(first), uuid.UUID(second)],
    )
    events = await read_events(services, {first, second}, len(ids))
    assert {e.event_id for e in events} == {row["event_id"] for row in ids}
    for cart in (first, second):
        versions = [e.version for e in events if str(e.cart_uuid) == cart]
        assert versions == sorted(versions)  # one cart's events in order
    last = max((e for e in events if str(e.cart_uuid) == first), key=lambda e: e.version)
    assert (last.type, float(last.cart.price_total), last.cart.items) == ("cart.item_added", 60.0, 3)
    sent = await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM cart_outbox WHERE cart_uuid = ANY($1::uuid[]) AND sent_at IS NULL",
            [uuid.UUID(first), uuid.UUID(second)],
        ),
        lambda n: n == 0,
    )
    assert sent == 0
    expected = {first: 3, second: 0}

    def per_cart(t: dict[str, Any] | None) -> dict[str, int] | None:
        return None if t is None else {k: v["items"] for k, v in t["value"]["carts"].items()}

    # The user's total is also 3 after the first two adds (2 + 1), so wait on
    # every cart's count, not on the total, or an intermediate state passes.
    totals = await eventually(lambda: totals_of(worker, user), lambda t: per_cart(t) == expected, timeout=30)
    assert per_cart(totals) == expected
    assert (totals["value"]["items"], totals["value"]["price_total"]) == (3, "60.0")


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """At least once from the client's side: try again while the server is away."""
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL, Code.CANCELLED):
                raise
        await asyncio.sleep(0.2)


async def test_sigkill_mid_stream_loses_no_cart_event(
    worker_api: Api, services: Services, worker: Worker, db: asyncpg.Pool
) -> None:
    await worker.restart()  # keep the coverage of what it ran so far
    api = worker_api
    item = await api.create_item("Crash test dummy", 1.0)
    clients, per_client = 16, 60
    users = [uuid.uuid4() for _ in range(clients)]
    carts = [new_id() for _ in range(clients)]
    done = 0

    async def client(index: int) -> None:
        nonlocal done
        for _ in range(per_client):
            await retrying(
                lambda: api.carts.AddItem(
                    cart_pb2.CartAddItemMsg(cart_uuid=carts[index], item_uuid=item.uuid, quantity=1),
                    metadata=auth(users[index]),
                    timeout=5,
                )
            )
            done += 1

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    while done < clients * per_client * 0.4:
        await asyncio.sleep(0.02)
    worker.kill()  # SIGKILL: no drain, the relay may die between the broker's ack and marking rows sent
    killed_at = done
    await asyncio.sleep(0.5)
    worker.start()
    await asyncio.gather(*tasks)
    await worker.wait_ready()
    assert 0 < killed_at < clients * per_client
    cart_ids = [uuid.UUID(c) for c in carts]
    unsent = await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM cart_outbox WHERE cart_uuid = ANY($1::uuid[]) AND sent_at IS NULL", cart_ids
        ),
        lambda n: n == 0,
        timeout=60,
    )
    assert unsent == 0
    rows = await db.fetch("SELECT event_id FROM cart_outbox WHERE cart_uuid = ANY($1::uuid[])", cart_ids)
    events = await read_events(services, set(carts), len(rows), timeout=90)
    assert {e.event_id for e in events} == {
        row["event_id"] for row in rows
    }  # nothing missing (repeats allowed)
    for cart in carts:
        versions = [e.version for e in events if str(e.cart_uuid) == cart]
        first_seen = list(dict.fromkeys(versions))
        assert first_seen == sorted(first_seen)  # in order per cart
        stored = await db.fetchval("SELECT quantity FROM cart_entries WHERE cart_uuid = $1", uuid.UUID(cart))
        assert max(versions) == await db.fetchval(
            "SELECT version FROM carts WHERE uuid = $1", uuid.UUID(cart)
        )
        # A call cut off by the kill may have committed and been retried: at least, never less.
        assert stored >= per_client
