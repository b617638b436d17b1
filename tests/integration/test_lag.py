"""GET /lag: a worker says how far its agents are behind, per topic and partition it holds."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import ADMIN, Client
from tests.integration.stack import customer_record, eventually


def inbound(body: Any) -> list[dict[str, Any]]:
    return [row for row in body["partitions"] if row["topic"] == "licenses.inbound"]


async def test_lag_is_listed_per_partition_and_comes_back_to_zero(client: Client) -> None:
    # The session's only worker holds every partition of the inbound topic (once
    # the group has assigned them: right after start the list is empty).
    _, before = await eventually(
        lambda: client.get("/lag", token=ADMIN), lambda r: r[0] == 200 and len(inbound(r[1])) == 4
    )
    ends_before = {row["partition"]: row["end"] for row in inbound(before)}
    assert sorted(ends_before) == [0, 1, 2, 3]

    sent = [customer_record(SKU2=True) for _ in range(20)]
    # Right after the first assignment the worker recovers its tables, and a POST
    # then may wait ~5 s and answer 503 dependency_unavailable (retry; nothing was
    # accepted). Run alone, this test starts there: let the first one be retried.
    first = await eventually(lambda: client.post("/salesforce/webhook", sent[0]), lambda r: r[0] == 202)
    assert first[0] == 202, first
    for record in sent[1:]:
        answer = await client.post("/salesforce/webhook", record)
        assert answer[0] == 202, answer

    _, body = await eventually(
        lambda: client.get("/lag", token=ADMIN),
        lambda r: r[0] == 200 and r[1]["topics"]["licenses.inbound"] == 0,
        timeout=60,
    )
    rows = inbound(body)
    # The records are in the ends now, and everything up to the ends is committed.
    assert sum(row["end"] for row in rows) - sum(ends_before.values()) >= len(sent)
    assert all(row["committed"] == row["end"] and row["lag"] == 0 for row in rows)
    assert body["total"] == sum(body["topics"].values())
    # Changelogs are read, never committed: they are not lag.
    assert not [row for row in body["partitions"] if row["topic"].endswith("-changelog")]
