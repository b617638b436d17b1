"""The web server of every process: Faust's aiohttp driver without Faust's built-in pages."""

from __future__ import annotations

from typing import Any, ClassVar

from faust.web.drivers.aiohttp import Web

NO_BLUEPRINTS: tuple[tuple[str, Any], ...] = ()


class StreamWeb(Web):
    """Serves only the routes declared with `StreamApp.route` (each says who may call it).

    Faust mounts blueprints of its own when the server starts: `/router/...`,
    `/table/...` and an index at `/`. They answer anyone and were in no route
    list: `/table/{name}/{key}/` served any table's values (every user's cart
    totals) without a token. `/tables/` is the admin-only replacement, and
    `table_route` forwards a request to the key's owner by itself, without them.
    """

    default_blueprints: ClassVar[Any] = NO_BLUEPRINTS
    production_blueprints: ClassVar[Any] = NO_BLUEPRINTS
    debug_blueprints: ClassVar[Any] = NO_BLUEPRINTS
    optional_blueprints: ClassVar[Any] = NO_BLUEPRINTS
