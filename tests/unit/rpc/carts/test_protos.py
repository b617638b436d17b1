"""The wire contract, pinned: package, service, method and message names, field names, numbers and types.

Existing shop fronts are generated from this contract; an edit to protobuf/ that
breaks it must fail here, not in production.
"""

from __future__ import annotations

from typing import cast

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from streamapp.rpc.carts.protos import cart_pb2, item_pb2, type_pb2

S, D, I32, I64, MSG = (
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_DOUBLE,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_MESSAGE,
)
TS = (MSG, "google.protobuf.Timestamp")
REPEATED = "repeated"

# message full name -> {field: (number, type[, message type][, "repeated"])}
CONTRACT: dict[str, dict[str, tuple[object, ...]]] = {
    "type.AddressMsg": {
        "UUID": (1, S),
        "line1": (2, S),
        "line2": (3, S),
        "line3": (4, S),
        "city": (5, S),
        "province": (6, S),
        "zipCode": (7, S),
        "countryCode": (8, S),
        "other": (9, S),
        "updated": (40, *TS),
        "created": (41, *TS),
    },
    "type.PagerMsg": {"sorting": (1, S), "order": (2, S), "current": (3, I64), "total": (4, I64)},
    "type.PageRequestMsg": {"sorting": (1, S), "order": (2, S), "requested": (3, I64), "size": (4, I64)},
    "item.ItemMsg": {
        "uuid": (1, S),
        "name": (2, S),
        "description": (4, S),
        "price": (7, D),
        "created": (40, *TS),
        "updated": (41, *TS),
    },
    "item.ItemCreateMsg": {"name": (1, S), "description": (2, S), "price": (3, D)},
    "item.ItemUpdateMsg": {"item": (1, MSG, "item.ItemMsg")},
    "item.ItemDeleteMsg": {"item_uuid": (1, S)},
    "item.ItemGetMsg": {"item_uuid": (1, S)},
    "item.ItemGetResultMsg": {"item": (1, MSG, "item.ItemMsg")},
    "item.ItemListMsg": {"request": (1, MSG, "type.PageRequestMsg")},
    "item.ItemListResultMsg": {
        "items": (1, MSG, "item.ItemMsg", REPEATED),
        "pager": (2, MSG, "type.PagerMsg"),
    },
    "cart.CartMsg": {
        "uuid": (1, S),
        "user_uuid": (2, S),
        "entries": (3, MSG, "cart.CartMsg.EntryMsg", REPEATED),
        "configuration": (4, MSG, "cart.CartMsg.ConfigurationMsg"),
        "price_total": (5, D),
        "created": (40, *TS),
        "updated": (41, *TS),
    },
    "cart.CartMsg.EntryMsg": {"item": (1, MSG, "item.ItemMsg"), "quantity": (2, I32)},
    "cart.CartMsg.ConfigurationMsg": {"address": (1, MSG, "type.AddressMsg")},
    "cart.CartGetMsg": {"uuid": (1, S)},
    "cart.CartConfigureAddressMsg": {"cart_uuid": (1, S), "address": (2, MSG, "type.AddressMsg")},
    "cart.CartAddItemMsg": {"cart_uuid": (1, S), "item_uuid": (2, S), "quantity": (3, I32)},
    "cart.CartUpdateQuantityMsg": {"cart_uuid": (1, S), "item_uuid": (2, S), "quantity": (3, I32)},
    "cart.CartEmptyMsg": {"cart_uuid": (1, S)},
    **{
        f"cart.{name}": {"result": (1, MSG, "cart.CartMsg")}
        for name in (
            "CartGetResultMsg",
            "CartConfigureResultMsg",
            "CartAddItemResultMsg",
            "CartUpdateQuantityResultMsg",
            "CartEmptyResultMsg",
        )
    },
}

SERVICES = {
    "item.Item": {
        "Create": ("item.ItemCreateMsg", "item.ItemMsg"),
        "Update": ("item.ItemUpdateMsg", "item.ItemMsg"),
        "Delete": ("item.ItemDeleteMsg", "google.protobuf.Empty"),
        "Get": ("item.ItemGetMsg", "item.ItemGetResultMsg"),
        "List": ("item.ItemListMsg", "item.ItemListResultMsg"),
    },
    "cart.Cart": {
        "Get": ("cart.CartGetMsg", "cart.CartGetResultMsg"),
        "ConfigureAddress": ("cart.CartConfigureAddressMsg", "cart.CartConfigureResultMsg"),
        "AddItem": ("cart.CartAddItemMsg", "cart.CartAddItemResultMsg"),
        "UpdateQuantity": ("cart.CartUpdateQuantityMsg", "cart.CartUpdateQuantityResultMsg"),
        "Empty": ("cart.CartEmptyMsg", "cart.CartEmptyResultMsg"),
    },
}


def all_messages() -> dict[str, Descriptor]:
    found: dict[str, Descriptor] = {}

    def walk(descriptor: Descriptor) -> None:
        found[descriptor.full_name] = descriptor
        for nested in descriptor.nested_types:
            walk(nested)

    for module in (type_pb2, item_pb2, cart_pb2):
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            walk(descriptor)
    return found


def test_no_message_more_or_less() -> None:
    assert set(all_messages()) == set(CONTRACT)


@pytest.mark.parametrize("message", sorted(CONTRACT))
def test_message_fields(message: str) -> None:
    descriptor = all_messages()[message]
    actual: dict[str, tuple[object, ...]] = {}
    for field in descriptor.fields:
        shape: tuple[object, ...] = (field.number, field.type)
        if field.type == MSG:
            # A message-typed field always has its message type (None is for scalar fields).
            shape += (cast(Descriptor, field.message_type).full_name,)
        if field.is_repeated:
            shape += (REPEATED,)
        actual[field.name] = shape
    assert actual == CONTRACT[message]


def test_services_and_methods() -> None:
    actual = {}
    for module in (item_pb2, cart_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            actual[service.full_name] = {
                method.name: (method.input_type.full_name, method.output_type.full_name)
                for method in service.methods
                if not method.client_streaming and not method.server_streaming
            }
            assert len(actual[service.full_name]) == len(service.methods)  # all unary
    assert actual == SERVICES
    assert {m.DESCRIPTOR.package for m in (type_pb2, item_pb2, cart_pb2)} == {"type", "item", "cart"}
