"""The simulator's record generator and command line."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest

from simulator.__main__ import ORG, SYSTEMS, Simulation, build_parser, parse
from simulator.merchants import Receiver
from simulator.records import Population
from streamapp.models.salesforce import parse_outbound_message, parse_simulator_record
from streamapp.outbound import signing


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


def test_cli_defaults_are_lively_and_calm_is_the_old_pace() -> None:
    args = parse([])
    assert (args.rate, args.count, args.customers, args.systems) == (180.0, 0, 10, list(SYSTEMS))
    assert parse(["--calm"]).rate == 6.0
    assert parse(["--rate", "3/s"]).rate == 180.0
    assert parse(["--rate", "90/min"]).rate == 90.0


def test_cli_refuses_unknown_systems_and_bad_rates(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--systems", "salesforce,fax"], ["--rate", "fast"], ["--rate", "-1"]):
        with pytest.raises(SystemExit):
            parse(argv)
    assert parse(["--systems", "carts,tasks"]).systems == ["carts", "tasks"]


def test_soap_customers_send_outbound_messages_the_webhook_parses() -> None:
    population = Population(6, seed=3, soap_every=2)
    soap = [c for c in population.customers if c.soap]
    assert len(soap) == 3
    assert all(len(c.id) == 18 for c in soap)
    customer = soap[0]
    customer.signed_tos, customer.skus["SKU2"] = True, True
    message = parse_outbound_message(customer.outbound_message(ORG, datetime.now(UTC)))
    (notification,) = message.notifications
    assert notification.customer.id == customer.id
    assert notification.customer.licensed_skus() == frozenset({"SKU2"})


def test_population_without_soap_is_unchanged() -> None:
    # The benchmarks replay seeded populations: the SOAP option must not shift them.
    assert [c.record() for c in Population(4, seed=9).customers] == [
        c.record() for c in Population(4, seed=9, soap_every=0).customers
    ]
    assert not any(c.soap for c in Population(4, seed=9).customers)


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


def test_cli_addresses() -> None:
    args = build_parser().parse_args(["--ingest", "http://h:1", "--grpc", "h:2", "--users", "7"])
    assert (args.ingest, args.grpc, args.users, args.base) == (
        "http://h:1",
        "h:2",
        7,
        "http://127.0.0.1:6066",
    )


def test_merchant_receiver_accepts_only_signed_deliveries() -> None:
    async def scenario() -> tuple[list[int], Receiver]:
        receiver = Receiver(secret=signing.new_secret())
        await receiver.start()
        body = json.dumps({"request_id": "r1", "status": "done", "merchant": {"name": "Netflix"}}).encode()
        assert receiver.secret is not None
        good = signing.headers(receiver.secret, "m1", body)
        forged = signing.headers(signing.new_secret(), "m2", body)
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for headers in (good, forged, {}):
                    async with session.post(receiver.url, data=body, headers=headers) as response:
                        statuses.append(response.status)
        finally:
            await receiver.stop()
        return statuses, receiver

    statuses, receiver = asyncio.run(scenario())
    assert statuses == [204, 401, 401]
    assert (receiver.verified, receiver.refused, receiver.last_result) == (1, 2, "r1: Netflix")


def test_the_terminal_line_is_short_and_counts_failures() -> None:
    sim = Simulation(parse(["--seed", "1"]))
    for name in SYSTEMS:
        sim.tallies[name].count(202 if name != "carts" else "OK")
    sim.tallies["tasks"].count(422)
    line = sim.progress(short=True)
    assert len(line) < 120, line
    assert "tasks 2" in line
    assert "not ok 1" in line
    assert "422:1" in sim.progress()
