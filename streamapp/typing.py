"""Type aliases over Faust's partly-generic protocols, so annotations stay short and consistent."""

from __future__ import annotations

from typing import Any, TypeAlias, cast

import faust
from aiohttp import web as aioweb

Event: TypeAlias = faust.EventT[Any]
Topic: TypeAlias = faust.TopicT
Stream: TypeAlias = faust.StreamT[Any]


def concrete(stream: Stream) -> faust.Stream[Any]:
    """Agents receive a `faust.Stream`; its protocol type lacks `take_events`."""
    return cast("faust.Stream[Any]", stream)


def aiohttp_request(request: Any) -> aioweb.Request:
    """Faust's aiohttp driver hands views the aiohttp request itself."""
    return cast(aioweb.Request, request)
