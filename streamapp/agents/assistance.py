"""The assistance agent: each accepted request becomes one delivery per channel, then a row in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamapp.errors import describe
from streamapp.models.assistance import PIPELINE, AssistanceRequest
from streamapp.rules.assistance import deliveries_for
from streamapp.runtime.effects import Effects, Invalid, Output
from streamapp.runtime.runner import BatchRuntime
from streamapp.stores.assistance import write_requests
from streamapp.typing import Event, Topic

if TYPE_CHECKING:
    from streamapp.host import Host


class RequestProcessor:
    """Each request: one delivery per channel (a person is waiting for help), and the record.

    Both effects are idempotent (delivery ids derive from the request id and the
    channel; rows are keyed by request id), so a replayed batch changes nothing.
    """

    name = "assistance.notify"
    pipeline = PIPELINE

    def __init__(self, app: Host, deliveries: Topic) -> None:
        self.deliveries = deliveries.get_topic_name()
        self.batch_size = app.settings.sink_batch_size
        self.batch_within = app.settings.sink_batch_within
        self.runtime: BatchRuntime[AssistanceRequest] = BatchRuntime(app, self, write=write_requests)

    def plan(self, events: Sequence[Event]) -> Effects[AssistanceRequest]:
        effects: Effects[AssistanceRequest] = Effects()
        for event in events:
            try:
                request = AssistanceRequest.model_validate_json(event.value)
                deliveries = deliveries_for(request)
            except Exception as exc:
                effects.invalid.append(Invalid(event, describe(exc)))
                continue
            effects.rows.append(request)
            effects.outputs += [
                Output(self.deliveries, d.endpoint_id.encode(), d.model_dump_json().encode())
                for d in deliveries
            ]
        return effects
