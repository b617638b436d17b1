"""The simulator's record generator and command line."""

from __future__ import annotations

import uuid

from simulator.__main__ import build_parser
from simulator.records import Population
from streamapp.models.salesforce import parse_simulator_record


def test_records_are_valid_and_repeatable() -> None:
    a, b = Population(5, seed=7), Population(5, seed=7)
    for _ in range(50):
        ra, rb = a.change().record(), b.change().record()
        assert ra == rb
        uuid.UUID(ra["Id"])
        import json

        assert parse_simulator_record(json.dumps(ra).encode()).id == ra["Id"]


def test_license_changing_changes_exactly_one_sku() -> None:
    population = Population(3, seed=1)
    before = {c.id: c.licensed() for c in population.customers}
    for _ in range(100):
        customer = population.license_changing()
        assert len(before[customer.id] ^ customer.licensed()) == 1
        before[customer.id] = customer.licensed()


def test_cli_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.rate, args.count, args.customers) == (6.0, 0, 10)
