"""The `item.Item` and `cart.Cart` servicers: validate, authorise, run one transaction, answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.empty_pb2 import Empty

from streamapp.config.carts import CartsSettings
from streamapp.models.carts import (
    Caller,
    item_fields,
    page_request,
    parse_uuid,
    quantity_to_add,
    quantity_to_set,
)
from streamapp.rpc.carts.convert import address_from_msg, cart_msg, item_msg
from streamapp.rpc.carts.protos import cart_pb2, cart_pb2_grpc, item_pb2, item_pb2_grpc, type_pb2
from streamapp.rpc.carts.rpc import Context, RpcRunner
from streamapp.stores.carts import cart_store, item_store
from streamapp.stores.carts.sql import Sql, statements, transaction

if TYPE_CHECKING:
    from streamapp.host import Host

T = TypeVar("T")


class Backend:
    """What both servicers share: the app (pool, settings), the rpc runner, the relay's doorbell."""

    def __init__(self, app: Host, runner: RpcRunner, poke: Callable[[], None]) -> None:
        self.app = app
        self.runner = runner
        self.poke = poke
        settings = app.settings.of(CartsSettings)
        self.limits = cart_store.Limits(settings.carts_max_quantity, settings.carts_max_entries)

    async def read(self, work: Callable[[Sql], Awaitable[T]]) -> T:
        # Reads are single statements (one snapshot each): no BEGIN/COMMIT round trips.
        return await statements(self.app.db, self.runner.tracer(), work)

    async def write(self, work: Callable[[Sql], Awaitable[T]]) -> T:
        result = await transaction(self.app.db, self.runner.tracer(), work)
        # Committed: outbox rows may be waiting.
        self.poke()
        return result


class ItemServicer(item_pb2_grpc.ItemServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def Create(self, request: item_pb2.ItemCreateMsg, context: Context) -> item_pb2.ItemMsg:
        async def work(caller: Caller) -> item_pb2.ItemMsg:
            caller.require_admin()
            fields = item_fields(request.name, request.description, request.price)
            return item_msg(await self.backend.write(lambda sql: item_store.create(sql, fields)))

        return await self.backend.runner.run(context, "item.Item/Create", work)

    async def Update(self, request: item_pb2.ItemUpdateMsg, context: Context) -> item_pb2.ItemMsg:
        async def work(caller: Caller) -> item_pb2.ItemMsg:
            caller.require_admin()
            item = request.item
            item_uuid = parse_uuid(item.uuid, "item.uuid")
            fields = item_fields(item.name, item.description, item.price, prefix="item.")
            return item_msg(await self.backend.write(lambda sql: item_store.update(sql, item_uuid, fields)))

        return await self.backend.runner.run(context, "item.Item/Update", work)

    async def Delete(self, request: item_pb2.ItemDeleteMsg, context: Context) -> Empty:
        async def work(caller: Caller) -> Empty:
            caller.require_admin()
            item_uuid = parse_uuid(request.item_uuid, "item_uuid")
            await self.backend.write(lambda sql: item_store.delete(sql, item_uuid))
            return Empty()

        return await self.backend.runner.run(context, "item.Item/Delete", work)

    async def Get(self, request: item_pb2.ItemGetMsg, context: Context) -> item_pb2.ItemGetResultMsg:
        async def work(caller: Caller) -> item_pb2.ItemGetResultMsg:
            item_uuid = parse_uuid(request.item_uuid, "item_uuid")
            item = await self.backend.read(lambda sql: item_store.get(sql, item_uuid))
            return item_pb2.ItemGetResultMsg(item=item_msg(item))

        return await self.backend.runner.run(context, "item.Item/Get", work)

    async def List(self, request: item_pb2.ItemListMsg, context: Context) -> item_pb2.ItemListResultMsg:
        async def work(caller: Caller) -> item_pb2.ItemListResultMsg:
            asked = request.request
            page = page_request(asked.sorting, asked.order, asked.requested, asked.size)
            items, total = await self.backend.read(lambda sql: item_store.page(sql, page))
            return item_pb2.ItemListResultMsg(
                items=[item_msg(item) for item in items],
                pager=type_pb2.PagerMsg(
                    sorting=page.sorting, order=page.order, current=page.page, total=page.pages(total)
                ),
            )

        return await self.backend.runner.run(context, "item.Item/List", work)


class CartServicer(cart_pb2_grpc.CartServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def Get(self, request: cart_pb2.CartGetMsg, context: Context) -> cart_pb2.CartGetResultMsg:
        async def work(caller: Caller) -> cart_pb2.CartGetResultMsg:
            cart_uuid = parse_uuid(request.uuid, "uuid")
            view = await self.backend.read(lambda sql: cart_store.get(sql, cart_uuid, caller))
            return cart_pb2.CartGetResultMsg(result=cart_msg(view))

        return await self.backend.runner.run(context, "cart.Cart/Get", work)

    async def ConfigureAddress(
        self, request: cart_pb2.CartConfigureAddressMsg, context: Context
    ) -> cart_pb2.CartConfigureResultMsg:
        async def work(caller: Caller) -> cart_pb2.CartConfigureResultMsg:
            cart_uuid = parse_uuid(request.cart_uuid, "cart_uuid")
            address = address_from_msg(request.address)
            view = await self.backend.write(
                lambda sql: cart_store.configure_address(sql, caller, cart_uuid, address)
            )
            return cart_pb2.CartConfigureResultMsg(result=cart_msg(view))

        return await self.backend.runner.run(context, "cart.Cart/ConfigureAddress", work)

    async def AddItem(
        self, request: cart_pb2.CartAddItemMsg, context: Context
    ) -> cart_pb2.CartAddItemResultMsg:
        async def work(caller: Caller) -> cart_pb2.CartAddItemResultMsg:
            cart_uuid = parse_uuid(request.cart_uuid, "cart_uuid")
            item_uuid = parse_uuid(request.item_uuid, "item_uuid")
            limits = self.backend.limits
            quantity = quantity_to_add(request.quantity, limits.max_quantity)
            view = await self.backend.write(
                lambda sql: cart_store.add_item(sql, caller, cart_uuid, item_uuid, quantity, limits)
            )
            return cart_pb2.CartAddItemResultMsg(result=cart_msg(view))

        return await self.backend.runner.run(context, "cart.Cart/AddItem", work)

    async def UpdateQuantity(
        self, request: cart_pb2.CartUpdateQuantityMsg, context: Context
    ) -> cart_pb2.CartUpdateQuantityResultMsg:
        async def work(caller: Caller) -> cart_pb2.CartUpdateQuantityResultMsg:
            cart_uuid = parse_uuid(request.cart_uuid, "cart_uuid")
            item_uuid = parse_uuid(request.item_uuid, "item_uuid")
            quantity = quantity_to_set(request.quantity, self.backend.limits.max_quantity)
            view = await self.backend.write(
                lambda sql: cart_store.update_quantity(sql, caller, cart_uuid, item_uuid, quantity)
            )
            return cart_pb2.CartUpdateQuantityResultMsg(result=cart_msg(view))

        return await self.backend.runner.run(context, "cart.Cart/UpdateQuantity", work)

    async def Empty(self, request: cart_pb2.CartEmptyMsg, context: Context) -> cart_pb2.CartEmptyResultMsg:
        async def work(caller: Caller) -> cart_pb2.CartEmptyResultMsg:
            cart_uuid = parse_uuid(request.cart_uuid, "cart_uuid")
            view = await self.backend.write(lambda sql: cart_store.empty(sql, caller, cart_uuid))
            return cart_pb2.CartEmptyResultMsg(result=cart_msg(view))

        return await self.backend.runner.run(context, "cart.Cart/Empty", work)
