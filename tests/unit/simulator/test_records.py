"""The simulator's record generator and command line."""

from __future__ import annotations

import json
import uuid

from simulator.__main__ import build_parser
from simulator.records import Population
from streamapp.models.licenses import parse_simulator_record


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


def test_task_script_and_deliveries() -> None:
    import random

    from simulator.tasks import TaskScript, deliveries
    from streamapp.models.tasks import TaskWebhook

    script = TaskScript(users=3, seed=4)
    events = [script.next_event() for _ in range(200)]
    for event in events:
        TaskWebhook.model_validate(event)
    assert {e["event"] for e in events} == {"created", "updated", "deleted"}
    assert len({e["metadata"]["userId"] for e in events}) == 3
    delivered = deliveries(events, random.Random(1), duplicates=0.2)
    assert len(delivered) > len(events)  # some repeated
    assert {json.dumps(e, sort_keys=True) for e in delivered} == {
        json.dumps(e, sort_keys=True) for e in events
    }
    assert delivered[:50] != events[:50]  # not in the original order


def test_cli_modes() -> None:
    args = build_parser().parse_args(["--mode", "tasks", "--users", "7"])
    assert (args.mode, args.users, args.url) == ("tasks", 7, None)
