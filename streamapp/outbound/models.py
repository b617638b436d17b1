"""What the delivery core is asked to deliver, and what an attempt came to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

DELIVERY_TOPIC = "deliveries.requests"


class DeliveryRequest(BaseModel):
    """Deliver `payload` as JSON to `endpoint_id`; `delivery_id` is stable across redeliveries."""

    model_config = ConfigDict(frozen=True)

    delivery_id: uuid.UUID
    pipeline: str
    # What the delivery is about (a request id) and who may read its history.
    subject_id: str
    owner: str
    endpoint_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: float
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410
