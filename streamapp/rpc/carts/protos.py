"""The generated carts protobuf modules, (re)generated from `protobuf/` on first import if needed."""

from __future__ import annotations

from streamapp.rpc.carts.codegen import ensure_generated

ensure_generated()

from streamapp.rpc.carts.pb import (  # noqa: E402  (the modules exist only after the call above)
    cart_pb2,
    cart_pb2_grpc,
    item_pb2,
    item_pb2_grpc,
    type_pb2,
)

# The fully qualified service names, for health and reflection.
ITEM_SERVICE = item_pb2.DESCRIPTOR.services_by_name["Item"].full_name
CART_SERVICE = cart_pb2.DESCRIPTOR.services_by_name["Cart"].full_name

__all__ = [
    "CART_SERVICE",
    "ITEM_SERVICE",
    "cart_pb2",
    "cart_pb2_grpc",
    "item_pb2",
    "item_pb2_grpc",
    "type_pb2",
]
