"""Generating customer records: a fixed population of customers whose purchases change."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

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

    def licensed(self) -> frozenset[str]:
        return frozenset(s for s, on in self.skus.items() if on) if self.signed_tos else frozenset()


class Population:
    """`customers` customers; each `change()` flips one thing on one of them."""

    def __init__(self, customers: int, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.customers = [self._new(i) for i in range(customers)]

    def _new(self, index: int) -> Customer:
        rng = self.rng
        name = f"{rng.choice(DOMAINS)}{index}.{rng.choice(TLDS)}"
        return Customer(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            name=name,
            account_manager=rng.choice(MANAGERS),
            sales_engineer_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
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
