"""The peers benchmark's pure parts: the generated workload and the first-record marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.marker import ENV, mark_first, read_marker
from bench.peers import generate
from streamapp.envelope import Envelope
from streamapp.models.licenses import CustomerRecord
from streamapp.rules.licenses import LicenseState, decide


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    first, again, other = generate(300, 20, seed=7), generate(300, 20, seed=7), generate(300, 20, seed=8)
    assert first.messages == again.messages
    assert first.messages != other.messages


def test_every_record_changes_one_license_as_the_worker_decides_it() -> None:
    workload = generate(500, 30, seed=1)
    states: dict[str, LicenseState] = {}
    history = 0
    licensed: dict[tuple[str, str], bool] = {}
    for key, value in workload.messages:
        envelope = Envelope.decode(value)
        record = CustomerRecord.model_validate(envelope.payload)
        assert key == record.id.encode()
        decision = decide(states.get(record.id), envelope, record)
        assert len(decision.updates) == 1
        assert decision.state is not None
        states[record.id] = decision.state
        history += len(decision.updates)
        for update in decision.updates:
            licensed[(update.customer_id, update.sku)] = update.action == "grant"
    assert history == workload.history_rows == 500
    assert len(licensed) == workload.license_rows
    assert sum(licensed.values()) == workload.active_licenses
    assert workload.customers <= 30


def test_the_marker_holds_the_first_call_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.marker

    path = tmp_path / "first"
    monkeypatch.setenv(ENV, str(path))
    monkeypatch.setattr(bench.marker, "_done", False)
    assert read_marker(str(path)) is None
    mark_first()
    marked = read_marker(str(path))
    assert marked is not None
    path.write_text("changed\n")
    mark_first()  # a no-op now
    assert path.read_text() == "changed\n"
