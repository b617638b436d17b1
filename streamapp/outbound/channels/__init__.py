"""Channel types by name: the built-in ones plus any registered as `streamapp.channels` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from streamapp.outbound.channels.base import Channel, ChannelConfig, ChannelContext, stored

ENTRY_POINT_GROUP = "streamapp.channels"

__all__ = ["Channel", "ChannelConfig", "ChannelContext", "channel_types", "stored"]


def channel_types() -> dict[str, type[Channel[Any]]]:
    """Every channel type by its `kind`. Adding one is a module with a `Channel` subclass."""
    from streamapp.outbound.channels.email import EmailChannel
    from streamapp.outbound.channels.slack import SlackChannel
    from streamapp.outbound.channels.webhook import WebhookChannel

    found: dict[str, type[Channel[Any]]] = {
        cls.kind: cls for cls in (WebhookChannel, SlackChannel, EmailChannel)
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Channel)):
            raise TypeError(f"entry point {ep.name} is not a streamapp Channel")
        found[cls.kind] = cls
    return found
