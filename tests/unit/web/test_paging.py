"""Keyset paging: cursors round-trip, forged ones and bad limits are a 422 naming the parameter."""

from __future__ import annotations

import base64

import pytest

from streamapp.errors import ValidationFailed
from streamapp.web.paging import decode_cursor, decode_time_cursor, encode_cursor, next_cursor
from tests.unit.webapp import PROD, bearer, served

# Every list route: one convention (`?after=&limit=`, answered with `next`).
LISTS = ("/licenses", "/clients/c-1/requests", "/users/u-1/tasks", "/dead-letters", "/deliveries")
ADMIN_LISTS = ("/dead-letters", "/deliveries")


def test_a_cursor_carries_its_key_back() -> None:
    cursor = encode_cursor("2026-01-01T00:00:00+00:00", "task/ä 1")
    assert decode_cursor(cursor, 2) == ["2026-01-01T00:00:00+00:00", "task/ä 1"]
    assert not {"=", "/", "+"} & set(cursor)  # it goes in a query string as it is


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        encode_cursor("a"),  # one part where the route's key has two
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["a", 2]').decode(),
        encode_cursor("a\x00", "b"),  # PostgreSQL text cannot hold NUL
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_no_route_gave_out_is_refused(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor, 2)
    assert caught.value.errors[0]["field"] == "after"
    assert caught.value.errors[0]["type"] == "invalid_cursor"


def test_a_time_cursor_is_a_time_with_its_offset_and_a_uuid() -> None:
    when, ident = decode_time_cursor(
        encode_cursor("2026-01-01T00:00:00.5Z", "00000000-0000-0000-0000-000000000001")
    )
    assert (when.isoformat(), ident.int) == ("2026-01-01T00:00:00.500000+00:00", 1)
    for key in [
        ("yesterday", "00000000-0000-0000-0000-000000000001"),
        ("2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000001"),  # no offset: which time?
        ("2026-01-01T00:00:00Z", "not-a-uuid"),
    ]:
        with pytest.raises(ValidationFailed) as caught:
            decode_time_cursor(encode_cursor(*key))
        assert caught.value.errors[0]["type"] == "invalid_cursor"


def test_next_is_given_only_when_the_query_found_more_than_a_page() -> None:
    rows = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    assert next_cursor(rows[:2], 2, "id") is None
    assert decode_cursor(next_cursor(rows, 2, "id") or "", 1) == ["b"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("after=", "after"),
        ("after=%00", "after"),
        ("after=bm90IGEgY3Vyc29y", "after"),
    ],
)
async def test_bad_paging_parameters_are_a_422_before_the_database(path: str, query: str, field: str) -> None:
    """No database behind this app: a 422 here was decided before any query (a 503 otherwise)."""
    async with served(**PROD) as (_, client):
        answer = await client.get(f"{path}?{query}", headers=bearer("admin-token"))
        body = await answer.json()
        assert (answer.status, body["error"]) == (422, "validation_failed"), body
        assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize("path", LISTS)
async def test_list_routes_need_a_credential_outside_dev(path: str) -> None:
    async with served(**PROD) as (_, client):
        answer = await client.get(path)
        assert (answer.status, (await answer.json())["error"]) == (401, "unauthorized")
        # Past the door, the database (absent here) is asked: 503, not 401.
        assert (await client.get(path, headers=bearer("admin-token"))).status == 503


async def test_the_read_token_lists_customers_and_tasks_but_not_a_clients_requests() -> None:
    async with served(**PROD) as (_, client):
        for path in ("/licenses", "/users/u-1/tasks"):
            assert (await client.get(path, headers=bearer("read-token"))).status == 503
        for path in ("/clients/c-1/requests", *ADMIN_LISTS):
            answer = await client.get(path, headers=bearer("read-token"))
            assert answer.status == 401, path
