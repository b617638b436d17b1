"""Rows to protobuf messages (and the few request fields that need unpacking)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from streamapp.models.carts import AddressFields, AddressRow, CartView, ItemRow, address_fields
from streamapp.rpc.carts.protos import cart_pb2, item_pb2, type_pb2

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def timestamp(value: datetime) -> Timestamp:
    # PostgreSQL gives aware datetimes in microseconds; FromDatetime's general
    # path costs several times this on every entry of every cart.
    seconds = (value - EPOCH) // SECOND
    return Timestamp(seconds=seconds, nanos=value.microsecond * 1000)


def item_msg(item: ItemRow) -> item_pb2.ItemMsg:
    return item_pb2.ItemMsg(
        uuid=str(item.uuid),
        name=item.name,
        description=item.description,
        price=float(item.price),
        created=timestamp(item.created),
        updated=timestamp(item.updated),
    )


def address_msg(address: AddressRow) -> type_pb2.AddressMsg:
    return type_pb2.AddressMsg(
        UUID=str(address.uuid),
        line1=address.line1,
        line2=address.line2,
        line3=address.line3,
        city=address.city,
        province=address.province,
        zipCode=address.zip_code,
        countryCode=address.country_code,
        other=address.other,
        updated=timestamp(address.updated),
        created=timestamp(address.created),
    )


def cart_msg(view: CartView) -> cart_pb2.CartMsg:
    configuration = cart_pb2.CartMsg.ConfigurationMsg()
    if view.address is not None:
        configuration.address.CopyFrom(address_msg(view.address))
    return cart_pb2.CartMsg(
        uuid=str(view.uuid),
        user_uuid=str(view.user_uuid),
        entries=[
            cart_pb2.CartMsg.EntryMsg(item=item_msg(entry.item), quantity=entry.quantity)
            for entry in view.entries
        ],
        configuration=configuration,
        price_total=float(view.price_total),
        created=timestamp(view.created),
        updated=timestamp(view.updated),
    )


def address_from_msg(msg: type_pb2.AddressMsg) -> AddressFields:
    return address_fields(
        address_uuid=msg.UUID,
        line1=msg.line1,
        line2=msg.line2,
        line3=msg.line3,
        city=msg.city,
        province=msg.province,
        zip_code=msg.zipCode,
        country_code=msg.countryCode,
        other=msg.other,
    )
