"""Parsing and mapping of Salesforce input: the simulator's JSON and SOAP Outbound Messages."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from streamapp.errors import MalformedBody, ValidationFailed
from streamapp.models.licenses import (
    CustomerRecord,
    parse_outbound_message,
    parse_simulator_record,
    soap_ack,
    soap_fault,
)

CID = str(uuid.uuid4())
SE = str(uuid.uuid4())


def body(**overrides: object) -> bytes:
    record: dict[str, object] = {
        "AccountManager": "Ada",
        "Id": CID,
        "Name": "acme.com",
        "SalesEngineerId": SE,
        "SignedTos": True,
        "SKU1": True,
        "SKU2": False,
        "SKU3": True,
    }
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_simulator_record_maps_to_customer() -> None:
    customer = parse_simulator_record(body(Unknown="ignored"))
    assert customer == CustomerRecord(
        id=CID,
        name="acme.com",
        account_manager="Ada",
        sales_engineer_id=SE,
        signed_tos=True,
        skus={"SKU1": True, "SKU2": False, "SKU3": True},
    )
    assert customer.licensed_skus() == {"SKU1", "SKU3"}


def test_no_tos_no_licenses() -> None:
    assert parse_simulator_record(body(SignedTos=False)).licensed_skus() == frozenset()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"SignedTos": "true"}, "SignedTos"),
        ({"SKU1": 1}, "SKU1"),
        ({"Id": "not-a-uuid"}, "Id"),
        ({"SalesEngineerId": 42}, "SalesEngineerId"),
        ({"AccountManager": None}, "AccountManager"),
        ({"Name": ""}, "Name"),
        ({"SKU3": ...}, "SKU3"),
    ],
)
def test_mistyped_or_missing_fields_are_named(override: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_simulator_record(body(**override))
    assert [err["loc"] for err in info.value.errors()] == [(field,)]


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"x"', b"", b"\xff\xfe"])
def test_not_a_json_object_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_simulator_record(raw)


def envelope(notifications: str, org: str = "00D1") -> bytes:
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k1</ActionId>{notifications}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def notification(nid: str, kind: str, fields: dict[str, str]) -> str:
    inner = "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in fields.items())
    return (
        f'<Notification><Id>{nid}</Id><sObject xsi:type="sf:{kind}" '
        f'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{inner}</sObject></Notification>'
    )


def test_account_and_opportunity_mapping() -> None:
    message = parse_outbound_message(
        envelope(
            notification(
                "n1",
                "Account",
                {
                    "Id": "001A",
                    "Name": "acme.com",
                    "AccountManager__c": "Ada",
                    "SalesEngineerId__c": "005X",
                    "SignedTos__c": "true",
                    "SKU1__c": "true",
                    "SKU2__c": "false",
                    "LastModifiedDate": "2026-03-01T12:00:00.000Z",
                },
            )
            + notification(
                "n2",
                "Opportunity",
                {
                    "Id": "006B",
                    "AccountId": "001B",
                    "Name": "Deal",
                    "OwnerId": "005O",
                    "SignedTos__c": "1",
                    "SKU3__c": "1",
                },
            )
        )
    )
    assert (message.organization_id, message.action_id) == ("00D1", "04k1")
    first, second = message.notifications
    assert first.notification_id == "n1"
    assert first.sobject_type == "Account"
    assert first.customer.id == "001A"
    assert first.customer.account_manager == "Ada"
    assert first.customer.sales_engineer_id == "005X"
    assert first.customer.licensed_skus() == {"SKU1"}
    assert first.occurred_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    # An opportunity belongs to its account; with no account name its own Name is used.
    assert (second.customer.id, second.customer.name) == ("001B", "Deal")
    assert second.customer.account_manager == "005O"
    assert second.customer.licensed_skus() == {"SKU3"}
    assert second.occurred_at is None


def test_soap_errors_name_the_fields() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_outbound_message(
            envelope(
                notification("n1", "Contact", {"Id": "003"})
                + notification("n2", "Account", {"Id": "001", "SignedTos__c": "maybe"})
                + "<Notification><Id>n3</Id></Notification>"
                + notification(
                    "",
                    "Account",
                    {
                        "Id": "001",
                        "Name": "x",
                        "SignedTos__c": "true",
                        "LastModifiedDate": "yesterday",
                    },
                ),
                org="",
            )
        )
    fields = {err["field"] for err in info.value.errors}
    assert fields == {
        "OrganizationId",
        "Notification[0].sObject",
        "Notification[1].Name",
        "Notification[1].SignedTos__c",
        "Notification[2].sObject",
        "Notification[3].Id",
        "Notification[3].LastModifiedDate",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"<unclosed",
        b"not xml at all",
        b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
    ],
)
def test_malformed_xml(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_outbound_message(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"<a/>",
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
    ],
)
def test_wrong_shape(raw: bytes) -> None:
    with pytest.raises(ValidationFailed):
        parse_outbound_message(raw)


def test_no_notifications_and_too_many() -> None:
    with pytest.raises(ValidationFailed):
        parse_outbound_message(envelope(""))
    many = "".join(
        notification(f"n{i}", "Account", {"Id": "001", "Name": "x", "SignedTos__c": "true"})
        for i in range(101)
    )
    with pytest.raises(ValidationFailed, match="at most 100"):
        parse_outbound_message(envelope(many))


def test_ack_and_fault() -> None:
    assert b"<Ack>true</Ack>" in soap_ack(True)
    assert b"<Ack>false</Ack>" in soap_ack(False)
    fault = soap_fault("forbidden", "org <x> & co")
    assert b"<reason>forbidden</reason>" in fault
    assert b"org &lt;x&gt; &amp; co" in fault
