"""The TODO app's task webhook: validation and stable event ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from streamapp.models.tasks import TaskWebhook


def webhook(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event": "created",
        "timestamp": "2026-03-01T12:00:00+01:00",
        "metadata": {"userId": "u1", "id": "t1", "content": "x", "isCompleted": False},
    }
    body.update(overrides)
    return body


def test_webhook_validation_and_stable_ids() -> None:
    hook = TaskWebhook.model_validate(webhook())
    assert hook.timestamp.utcoffset() == timedelta(hours=1)
    assert hook.event_id() == TaskWebhook.model_validate(webhook()).event_id()
    assert hook.event_id() != TaskWebhook.model_validate(webhook(event="updated")).event_id()
    for bad in (
        webhook(event="archived"),
        webhook(timestamp="2026-03-01T12:00:00"),  # no offset
        webhook(timestamp="yesterday"),
        webhook(metadata={"id": "t1"}),
        webhook(metadata={"userId": "u", "id": "t", "isCompleted": "yes"}),
    ):
        with pytest.raises(ValidationError):
            TaskWebhook.model_validate(bad)
