"""Generating customer records: a fixed population of customers whose purchases change.

A customer is sent either as the legacy simulator's flat JSON or, like a real
Salesforce org, as a SOAP Outbound Message (an `sf:Account` with an 18-character id).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

MANAGERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Ken Thompson")
DOMAINS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell")
TLDS = ("com", "io", "net", "co")


@dataclass
class Customer:
    id: str
    name: str
    account_manager: str
    sales_engineer_id: str
    signed_tos: bool = False
    skus: dict[str, bool] = field(default_factory=lambda: {"SKU1": False, "SKU2": False, "SKU3": False})
    # Sent as a SOAP Outbound Message rather than the flat JSON record.
    soap: bool = False

    def record(self) -> dict[str, Any]:
        """The flat JSON object the simulator posts (the legacy wire format)."""
        return {
            "AccountManager": self.account_manager,
            "Id": self.id,
            "Name": self.name,
            "SalesEngineerId": self.sales_engineer_id,
            "SignedTos": self.signed_tos,
            **self.skus,
        }

    def outbound_message(self, org: str, when: datetime) -> bytes:
        """A SOAP 1.1 Outbound Message with this customer as one `sf:Account` notification."""
        fields = {
            "Id": self.id,
            "Name": self.name,
            "AccountManager__c": self.account_manager,
            "SignedTos__c": str(self.signed_tos).lower(),
            "LastModifiedDate": when.isoformat(),
            **{f"{sku}__c": str(on).lower() for sku, on in self.skus.items()},
        }
        sobject = "".join(f"<sf:{name}>{escape(value)}</sf:{name}>" for name, value in fields.items())
        notification_id = "04l" + uuid.uuid4().hex[:15]
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{escape(org)}</OrganizationId><ActionId>04k000000000001AAA</ActionId>"
            f"<Notification><Id>{notification_id}</Id>"
            '<sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{sobject}</sObject></Notification>"
            "</notifications></soapenv:Body></soapenv:Envelope>"
        ).encode()

    def licensed(self) -> frozenset[str]:
        return frozenset(s for s, on in self.skus.items() if on) if self.signed_tos else frozenset()


class Population:
    """`customers` customers; each `change()` flips one thing on one of them."""

    def __init__(self, customers: int, seed: int | None = None, soap_every: int = 0) -> None:
        """Every `soap_every`-th customer (0: none) is a SOAP customer."""
        self.rng = random.Random(seed)
        self.customers = [self._new(i, bool(soap_every) and i % soap_every == 1) for i in range(customers)]

    def _new(self, index: int, soap: bool = False) -> Customer:
        rng = self.rng
        name = f"{rng.choice(DOMAINS)}{index}.{rng.choice(TLDS)}"
        customer_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        return Customer(
            # Salesforce ids are 18 characters (an Account's start with 001).
            id="001" + customer_id.hex[:15] if soap else str(customer_id),
            name=name,
            account_manager=rng.choice(MANAGERS),
            sales_engineer_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            soap=soap,
        )

    def change(self) -> Customer:
        customer = self.rng.choice(self.customers)
        if not customer.signed_tos or self.rng.random() < 0.1:
            customer.signed_tos = not customer.signed_tos if customer.signed_tos else True
        else:
            sku = self.rng.choice(list(customer.skus))
            customer.skus[sku] = not customer.skus[sku]
        return customer

    def license_changing(self) -> Customer:
        """A change that alters the customer's licensed set (for benchmarks)."""
        while True:
            customer = self.rng.choice(self.customers)
            customer.signed_tos = True
            sku = self.rng.choice(list(customer.skus))
            customer.skus[sku] = not customer.skus[sku]
            return customer
