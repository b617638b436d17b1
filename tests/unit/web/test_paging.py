"""`?limit=&offset=`: defaults, bounds, and a 422 that names the parameter."""

from __future__ import annotations

import pytest

from streamapp.errors import ValidationFailed
from streamapp.web.paging import DEFAULT_LIMIT, MAX_LIMIT, Paging, paging


def test_defaults_and_given_values() -> None:
    assert paging({}) == Paging(limit=DEFAULT_LIMIT, offset=0)
    assert paging({}, default_limit=20) == Paging(limit=20, offset=0)
    assert paging({"limit": "7", "offset": "14"}) == Paging(limit=7, offset=14)
    assert paging({"limit": str(MAX_LIMIT)}).limit == MAX_LIMIT


@pytest.mark.parametrize(
    ("query", "field", "kind"),
    [
        ({"limit": "0"}, "limit", "out_of_range"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit", "out_of_range"),
        ({"limit": "ten"}, "limit", "not_an_integer"),
        ({"limit": ""}, "limit", "not_an_integer"),
        ({"limit": "1_000"}, "limit", "not_an_integer"),
        ({"limit": " 5"}, "limit", "not_an_integer"),
        ({"offset": "-1"}, "offset", "not_an_integer"),
        ({"offset": "9" * 40}, "offset", "not_an_integer"),
        ({"offset": "100001"}, "offset", "out_of_range"),
    ],
)
def test_bad_values_are_a_422_naming_the_parameter(query: dict[str, str], field: str, kind: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        paging(query)
    body = caught.value.to_json()
    assert body["error"] == "validation_failed"
    assert body["errors"] == [{"field": field, "type": kind, "message": body["errors"][0]["message"]}]
    assert field in body["detail"]
