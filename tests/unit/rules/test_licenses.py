"""The license rules: what a record does to a customer's state and what it emits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from streamapp.envelope import Envelope
from streamapp.models.licenses import CustomerRecord
from streamapp.rules.licenses import RECENT_EVENTS, Decision, LicenseState, decide

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(signed: bool = True, name: str = "acme.com", **skus: bool) -> CustomerRecord:
    return CustomerRecord(
        id="c1",
        name=name,
        account_manager="Ada",
        signed_tos=signed,
        skus={"SKU1": False, "SKU2": False, "SKU3": False, **skus},
    )


def env(rec: CustomerRecord, at: datetime = T0, event_id: uuid.UUID | None = None) -> Envelope:
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        source="t",
        key=rec.id,
        received_at=at,
        payload=rec.model_dump(),
    )


def apply(
    state: LicenseState | None,
    rec: CustomerRecord,
    at: datetime = T0,
    event_id: uuid.UUID | None = None,
) -> tuple[Decision, Envelope]:
    e = env(rec, at, event_id)
    return decide(state, e, rec), e


def test_first_record_grants_and_snapshots() -> None:
    decision, e = apply(None, record(SKU1=True, SKU3=True))
    assert decision.outcome == "applied"
    assert [(u.sku, u.action) for u in decision.updates] == [("SKU1", "grant"), ("SKU3", "grant")]
    assert all(u.source_event_id == e.event_id and u.effective_at == T0 for u in decision.updates)
    assert decision.customer is not None
    assert decision.customer.signed_tos
    assert decision.state is not None
    assert decision.state.licensed == {"SKU1", "SKU3"}


def test_unsigned_tos_licenses_nothing() -> None:
    decision, _ = apply(None, record(signed=False, SKU1=True))
    assert decision.updates == []
    assert decision.customer is not None  # the customer is still recorded
    assert decision.state is not None
    assert decision.state.licensed == frozenset()


def test_revoke_when_sku_dropped_or_tos_withdrawn() -> None:
    first, _ = apply(None, record(SKU1=True, SKU2=True))
    second, _ = apply(first.state, record(SKU1=True), T0 + timedelta(seconds=1))
    assert [(u.sku, u.action) for u in second.updates] == [("SKU2", "revoke")]
    assert second.customer is None  # attributes unchanged
    third, _ = apply(second.state, record(signed=False, SKU1=True), T0 + timedelta(seconds=2))
    assert [(u.sku, u.action) for u in third.updates] == [("SKU1", "revoke")]
    assert third.customer is not None
    assert not third.customer.signed_tos


def test_repeated_content_emits_nothing_but_is_remembered() -> None:
    first, _ = apply(None, record(SKU1=True))
    again, e = apply(first.state, record(SKU1=True), T0 + timedelta(seconds=1))
    assert again.outcome == "unchanged"
    assert again.updates == []
    assert again.customer is None
    assert again.state is not None
    assert again.state.last_event_id == e.event_id


def test_redelivery_is_a_duplicate() -> None:
    event_id = uuid.uuid4()
    first, _ = apply(None, record(SKU1=True), event_id=event_id)
    redelivered, _ = apply(first.state, record(SKU1=True), event_id=event_id)
    assert redelivered.outcome == "duplicate"
    assert redelivered.state is None
    assert redelivered.updates == []


def test_redelivery_after_newer_events_is_still_a_duplicate() -> None:
    old_id = uuid.uuid4()
    state = apply(None, record(SKU1=True), T0, old_id)[0].state
    state = apply(state, record(SKU2=True), T0 + timedelta(seconds=5))[0].state
    # The old event comes again (e.g. a replay after SIGKILL): it must not revert SKU2.
    again, _ = apply(state, record(SKU1=True), T0 + timedelta(seconds=10), old_id)
    assert again.outcome == "duplicate"


def test_out_of_order_older_record_is_stale() -> None:
    newer, _ = apply(None, record(SKU2=True), T0 + timedelta(hours=1))
    older, e = apply(newer.state, record(SKU1=True), T0)
    assert older.outcome == "stale"
    assert older.updates == []
    assert older.state is not None
    assert older.state.licensed == {"SKU2"}
    assert str(e.event_id) in older.state.recent_event_ids


def test_update_ids_are_stable_for_the_same_event() -> None:
    event_id = uuid.uuid4()
    a, _ = apply(None, record(SKU1=True), event_id=event_id)
    b, _ = apply(None, record(SKU1=True), event_id=event_id)
    assert [u.update_id for u in a.updates] == [u.update_id for u in b.updates]


def test_recent_event_ids_are_bounded() -> None:
    state = None
    for i in range(RECENT_EVENTS + 10):
        state = apply(state, record(SKU1=bool(i % 2)), T0 + timedelta(seconds=i))[0].state
    assert state is not None
    assert len(state.recent_event_ids) == RECENT_EVENTS


def test_name_change_snapshots_customer_without_license_change() -> None:
    first, _ = apply(None, record(SKU1=True))
    renamed, _ = apply(first.state, record(name="acme.io", SKU1=True), T0 + timedelta(seconds=1))
    assert renamed.outcome == "applied"
    assert renamed.updates == []
    assert renamed.customer is not None
    assert renamed.customer.name == "acme.io"
