"""The base view: errors become JSON with status + reason; bodies are read under a size cap."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aiohttp import web as aioweb
from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError

from streamapp.auth import same
from streamapp.envelope import utcnow
from streamapp.errors import (
    DependencyUnavailable,
    MalformedBody,
    PayloadTooLarge,
    StreamappError,
    Unauthorized,
    ValidationFailed,
    describe,
    is_data_exception,
    is_retriable,
)
from streamapp.settings import Settings
from streamapp.typing import aiohttp_request

if TYPE_CHECKING:
    from streamapp.host import CoreHost, Host

log = logging.getLogger(__name__)
T = TypeVar("T")
V = TypeVar("V", bound=View)
M = TypeVar("M", bound=BaseModel)


class JsonView(View):
    """Turns every `StreamappError` into `{"error": reason, "detail": ...}` with its status."""

    @property
    def core(self) -> CoreHost:
        """The app as the core's own views see it (consumer, tables, routes): core views only."""
        return cast("CoreHost", self.app)

    @property
    def host(self) -> Host:
        """The app this view serves, as pipelines see it (Faust types it as its own AppT)."""
        return cast("Host", self.app)

    async def dispatch(self, request: Any) -> Any:
        try:
            return await super().dispatch(request)
        except StreamappError as exc:
            return self.error_response(request, exc)
        except Exception:
            # A bug, not the caller's fault: log it with the traceback and still answer
            # in the same machine-readable shape.
            log.exception("unhandled error in %s %s", request.method, request.path)
            return self.error_response(request, StreamappError("unexpected server error"))

    def reply(self, model: type[BaseModel], body: dict[str, Any], status: int = 200) -> Response:
        """Answer `body` as the route's declared reply model: what goes out is what the spec says
        (a key the model lacks is a bug that fails here, in the fuzz campaign, not at a client)."""
        return self.json(model.model_validate(body).model_dump(mode="json"), status=status)

    def error_response(self, request: Request, exc: StreamappError) -> Response:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return self.json(exc.to_json(), status=exc.status, headers=headers)


def bound(view: type[V], **attributes: object) -> type[V]:
    """A subclass of a module-level view for one app, carrying what it needs (a topic, a service).

    Faust builds a view per request from its class, so what a view needs from its
    pipeline rides on the class; a subclass per app keeps two apps in one process
    (tests, worker and ingest) from sharing it, and the module-level class findable.
    """
    return cast("type[V]", type(view.__name__, (view,), {"__doc__": view.__doc__, **attributes}))


async def read_body(faust_request: Request, limit: int) -> bytes:
    """Read the whole body, refusing (413) as soon as it passes `limit` bytes.

    The declared Content-Length is checked first so a huge upload is refused
    before we read any of it; a missing or lying length is caught while reading.
    """
    request = aiohttp_request(faust_request)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


# A JSON `\u0000` escape not itself escaped (an even run of backslashes before it).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refuse_nul(body: bytes) -> None:
    """422 for a NUL character anywhere in a JSON body, consistently in every pipeline.

    JSON allows `\u0000`; PostgreSQL text does not (22021). Accepted, such a value
    was refused by PostgreSQL in the agent, on every replay. The check is on the
    bytes: a substring search, nothing per field.
    """
    if b"\x00" in body or (b"u0000" in body and _NUL_ESCAPE.search(body)):
        raise ValidationFailed(
            "text must not contain NUL characters",
            errors=[{"field": "", "type": "nul_character", "message": "NUL (\\u0000) is not allowed"}],
        )


def latest_event_time(settings: Settings) -> datetime:
    """The latest event time accepted now: the clock plus the allowed skew."""
    return utcnow() + timedelta(seconds=settings.max_future_skew)


def load_json(body: bytes, **options: Any) -> Any:
    """Parse JSON: 400 for bytes that are not JSON, or nest deeper than the parser recurses."""
    try:
        return json.loads(body, **options)
    except RecursionError as exc:  # `[` x 100,000: json.loads recurses once per level
        raise MalformedBody("body is not valid JSON: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"body is not valid JSON: {exc}") from exc


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body: 400 for bytes that are not JSON or not an object, 422 for a NUL."""
    refuse_nul(body)
    value = load_json(body)
    if not isinstance(value, dict):
        raise MalformedBody("body must be a JSON object")
    return value


def validation_errors(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """A pydantic error as a 422 naming each offending field."""
    errors = [
        {
            "field": prefix + ".".join(str(part) for part in err["loc"]),
            "type": err["type"],
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return ValidationFailed(f"invalid fields: {fields}", errors=errors)


def parse_query(request: Request, model: type[M]) -> M:
    """The query string validated with the route's declared query model: 422 naming each bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_errors(exc) from exc


def check_shared_secret(request: aioweb.Request, secret: str | None) -> None:
    """Constant-time shared-secret check (header or `?token=`); off when no secret is set."""
    if secret is None:
        return
    auth = request.headers.get("Authorization", "")
    offered = (
        request.headers.get("X-Webhook-Secret")
        or (auth[7:] if auth.lower().startswith("bearer ") else None)
        or request.query.get("token")
    )
    if offered is None or not same(offered, secret):
        raise Unauthorized("missing or wrong shared secret")


async def db_call(operation: Callable[[], Awaitable[T]]) -> T:
    """Run a database operation for a view: a database that is down is a 503, a value
    PostgreSQL refuses (NUL in text, out of range) a 422, neither a 500."""
    try:
        return await operation()
    except StreamappError:
        raise
    except Exception as exc:
        if is_retriable(exc):
            raise DependencyUnavailable(f"database unavailable: {describe(exc)}") from exc
        if is_data_exception(exc):
            sqlstate = getattr(exc, "sqlstate", "")
            raise ValidationFailed(
                f"a value in the request is not one PostgreSQL takes (SQLSTATE {sqlstate})"
            ) from exc
        raise
