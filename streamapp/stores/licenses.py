"""The licenses pipeline's reads of PostgreSQL for a table rebuild (`streamapp rebuild-state licenses`)."""

from __future__ import annotations

import json

import asyncpg

from streamapp.models.licenses import CustomerRecord
from streamapp.pipeline import Rows
from streamapp.rules.licenses import RECENT_EVENTS, LicenseState
from streamapp.tables.licenses import dump_state

LICENSES_SQL = """
SELECT c.id, c.name, c.account_manager, c.sales_engineer_id, c.signed_tos,
       c.effective_at, c.source_event_id,
       coalesce(json_object_agg(l.sku, l.active) FILTER (WHERE l.sku IS NOT NULL), '{}')::text AS skus,
       max(l.effective_at) AS licenses_at,
       (SELECT array_agg(h.source_event_id ORDER BY h.effective_at, h.recorded_at)
          FROM (SELECT source_event_id, effective_at, recorded_at FROM license_history
                 WHERE customer_id = c.id ORDER BY effective_at DESC, recorded_at DESC LIMIT $1) h
       ) AS recent
FROM customers c LEFT JOIN licenses l ON l.customer_id = c.id
GROUP BY c.id
"""


async def license_states(conn: asyncpg.Connection) -> Rows:
    """Each customer's `LicenseState` as the licenses agent would hold it after what PostgreSQL has."""
    rows: Rows = []
    for row in await conn.fetch(LICENSES_SQL, RECENT_EVENTS):
        skus: dict[str, bool] = json.loads(row["skus"])
        # The event ids PostgreSQL remembers, oldest first, each once: redeliveries of
        # them stay duplicates after the rebuild.
        recent = list(dict.fromkeys([*(row["recent"] or []), row["source_event_id"]]))
        effective = max(filter(None, (row["effective_at"], row["licenses_at"])))
        state = LicenseState(
            customer=CustomerRecord(
                id=row["id"],
                name=row["name"],
                account_manager=row["account_manager"],
                sales_engineer_id=row["sales_engineer_id"],
                signed_tos=row["signed_tos"],
                skus=skus,
            ),
            licensed=frozenset(sku for sku, active in skus.items() if active),
            effective_at=effective,
            last_event_id=recent[-1],
            recent_event_ids=tuple(recent[-RECENT_EVENTS:]),
        )
        rows.append((row["id"].encode(), dump_state(state)))
    return rows
