"""A shop front on the carts gRPC API: a small catalogue, carts filled, changed and emptied.

Also a tiny command line for people (`python -m simulator.carts --help`): the
project's own client where `grpcurl` is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from simulator.sending import Tally
from streamapp.carts.protos import cart_pb2, cart_pb2_grpc, item_pb2, item_pb2_grpc, type_pb2

CATALOGUE = (("Mug", 9.5), ("T-shirt", 19.0), ("Sticker pack", 4.25), ("Notebook", 7.0), ("Hoodie", 45.0))
TOKEN_VARIABLE = "STREAMAPP_DEV_CARTS_TOKEN"


class Carts:
    """The generated stubs with the caller's bearer token on every call."""

    def __init__(self, address: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.metadata = (("authorization", f"Bearer {token}"),)
        # protoc writes no type hints for the stubs.
        self.items = item_pb2_grpc.ItemStub(self.channel)  # type: ignore[no-untyped-call]
        self.carts = cart_pb2_grpc.CartStub(self.channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self.channel.close(None)

    async def catalogue(self) -> list[str]:
        """The item uuids, creating the catalogue first if it is empty (needs the admin role)."""
        listed = await self.items.List(
            item_pb2.ItemListMsg(request=type_pb2.PageRequestMsg(size=100)), metadata=self.metadata
        )
        found = [item.uuid for item in listed.items]
        if found:
            return found
        for name, price in CATALOGUE:
            item = await self.items.Create(
                item_pb2.ItemCreateMsg(name=name, description=f"a {name.lower()}", price=price),
                metadata=self.metadata,
            )
            found.append(item.uuid)
        return found

    async def add(self, cart: str, item: str, quantity: int) -> Any:
        return await self.carts.AddItem(
            cart_pb2.CartAddItemMsg(cart_uuid=cart, item_uuid=item, quantity=quantity), metadata=self.metadata
        )

    async def set_quantity(self, cart: str, item: str, quantity: int) -> Any:
        return await self.carts.UpdateQuantity(
            cart_pb2.CartUpdateQuantityMsg(cart_uuid=cart, item_uuid=item, quantity=quantity),
            metadata=self.metadata,
        )

    async def empty(self, cart: str) -> Any:
        return await self.carts.Empty(cart_pb2.CartEmptyMsg(cart_uuid=cart), metadata=self.metadata)

    async def get(self, cart: str) -> Any:
        return await self.carts.Get(cart_pb2.CartGetMsg(uuid=cart), metadata=self.metadata)


@dataclass
class Shopper:
    """A few carts of one user; each step adds an item, changes a quantity or empties a cart."""

    api: Carts
    rng: random.Random
    items: list[str] = field(default_factory=list)
    carts: list[str] = field(default_factory=lambda: [str(uuid.uuid4()) for _ in range(4)])
    # What each cart holds, as far as this shopper knows: it changes only what is there.
    contents: dict[str, set[str]] = field(default_factory=dict)
    tally: Tally = field(default_factory=lambda: Tally("carts"))

    async def step(self) -> None:
        if not self.items:
            self.items = await self.api.catalogue()
        cart = self.rng.choice(self.carts)
        inside = self.contents.setdefault(cart, set())
        roll = self.rng.random()
        try:
            if roll < 0.7 or not inside:
                item = self.rng.choice(self.items)
                await self.api.add(cart, item, self.rng.randint(1, 3))
                inside.add(item)
            elif roll < 0.9:
                item = self.rng.choice(sorted(inside))
                quantity = self.rng.randint(0, 2)
                await self.api.set_quantity(cart, item, quantity)
                if quantity == 0:
                    inside.discard(item)
            else:
                await self.api.empty(cart)
                inside.clear()
        except grpc.aio.AioRpcError as exc:
            self.tally.count(exc.code().name, cart)
            return
        self.tally.count("OK", f"cart {cart}")


def _print(message: Any) -> None:
    print(json.dumps(MessageToDict(message), indent=2))


async def _command(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not token:
        print(f"simulator.carts: pass --token or set {TOKEN_VARIABLE} (see the banner)", file=sys.stderr)
        return 2
    api = Carts(args.address, token)
    try:
        if args.action == "items":
            listed = await api.items.List(
                item_pb2.ItemListMsg(request=type_pb2.PageRequestMsg(size=100)), metadata=api.metadata
            )
            _print(listed)
        elif args.action == "add":
            _print(await api.add(args.cart, args.item, args.quantity))
        else:
            _print(await api.get(args.cart))
    except grpc.aio.AioRpcError as exc:
        print(f"simulator.carts: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        await api.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.carts", description=__doc__)
    parser.add_argument("action", choices=["items", "add", "get"])
    parser.add_argument("--address", default="127.0.0.1:9111", help="the carts gRPC address")
    parser.add_argument("--token", help=f"bearer token (default: ${TOKEN_VARIABLE})")
    parser.add_argument("--cart", default=None, help="cart uuid (add: a new one when omitted)")
    parser.add_argument("--item", help="item uuid (add)")
    parser.add_argument("--quantity", type=int, default=1)
    args = parser.parse_args(argv)
    if args.action == "add" and not args.item:
        parser.error("add needs --item")
    if args.action == "get" and not args.cart:
        parser.error("get needs --cart")
    args.cart = args.cart or str(uuid.uuid4())
    return asyncio.run(_command(args))


if __name__ == "__main__":
    sys.exit(main())
