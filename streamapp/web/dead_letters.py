"""`GET /dead-letters` and `POST /dead-letters/{id}/replay`: the dead-letter topic for the admin.

The dashboard lists and replays with these; so can any admin client. Reading is
the worker's `DeadLetterList` (streamapp/deadletter_list.py), replaying exactly
what `streamapp dead-letters replay --id` does.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, cast

from faust.web import Request, Response
from pydantic import BaseModel, Field

from streamapp.errors import DependencyUnavailable, Forbidden, NotFound, ValidationFailed, describe
from streamapp.overview import dead_letter_counts
from streamapp.routes import DASHBOARD_ADMIN, Operation, Reply
from streamapp.typing import aiohttp_request
from streamapp.web.base import JsonView, parse_query
from streamapp.web.dashboard import ReasonCount, dashboard_of
from streamapp.web.paging import PageQuery, decode_time_cursor, encode_cursor
from streamapp.web.replies import IsoTime
from streamapp.web.session import require_dashboard_admin

if TYPE_CHECKING:
    from streamapp.host import CoreHost

NAME_LIMIT = 200


class DeadLettersQuery(PageQuery):
    pipeline: str | None = Field(default=None, max_length=NAME_LIMIT, description="Only this pipeline's")
    reason: str | None = Field(default=None, max_length=NAME_LIMIT, description="Only this reason")


class DeadLetterSummary(BaseModel):
    """A letter without its bytes (up to the producer's limit each): a short preview of them instead."""

    dead_letter_id: str
    pipeline: str
    reason: str
    detail: str
    event_id: str | None
    topic: str
    partition: int | None
    offset: int | None
    position: str = Field(description="Where it failed: `topic[partition]@offset`")
    key: str | None
    preview: str | None
    payload_in_postgres: bool
    failed_at: IsoTime
    replay_topic: str
    dlq_partition: int
    dlq_offset: int
    replayed_at: float | None = Field(description="Unix time this worker replayed it (forgotten on restart)")


class DeadLettersPage(BaseModel):
    total: int = Field(
        description="Every letter that matches, also those older than the newest 10,000 listed"
    )
    letters: list[DeadLetterSummary] = Field(description="Newest first")
    by_reason: list[ReasonCount] = Field(description="All letters, most frequent first")
    next: str | None = Field(description="Pass as `after` for the next page; null on the last")


class Replayed(BaseModel):
    replayed: str = Field(description="The dead letter's id")
    topic: str = Field(description="Where its original bytes went")
    event_id: str | None


class DeadLetters(JsonView):
    """The newest letters first, filtered, a page at a time, with counts by reason."""

    async def get(self, request: Request) -> Response:
        raw = aiohttp_request(request)
        require_dashboard_admin(cast("CoreHost", self.app), raw)
        query = parse_query(request, DeadLettersQuery)
        after = decode_time_cursor(query.after) if query.after else None
        dead = dashboard_of(self).dead_letters
        try:
            found = await dead.page(query.pipeline, query.reason, after, query.limit)
        except Exception as exc:
            raise DependencyUnavailable(f"cannot read the dead-letter topic: {describe(exc)}") from exc
        last = found.letters[-1] if found.letters else None
        cursor = encode_cursor(last["failed_at"], last["dead_letter_id"]) if found.more and last else None
        body = {
            "total": found.total,
            "letters": found.letters,
            "by_reason": dead_letter_counts(dead.counts),
            "next": cursor,
        }
        return self.reply(DeadLettersPage, body)


class Replay(JsonView):
    """The original bytes back to their topic; replaying twice is harmless (events are known by id)."""

    async def post(self, request: Request, dead_letter_id: str) -> Response:
        app = cast("CoreHost", self.app)
        require_dashboard_admin(app, aiohttp_request(request))
        try:
            letter_id = uuid.UUID(dead_letter_id)
        except ValueError as exc:
            raise ValidationFailed(
                "the dead letter id must be a UUID",
                errors=[{"field": "dead_letter_id", "type": "uuid_parsing", "message": "not a UUID"}],
            ) from exc
        if app.draining:
            raise DependencyUnavailable("the worker is stopping; replay on another worker or later")
        try:
            letter = await dashboard_of(self).dead_letters.replay(letter_id)
        except Exception as exc:
            raise DependencyUnavailable(f"replay failed (it may have been sent): {describe(exc)}") from exc
        if letter is None:
            raise NotFound(f"no dead letter {dead_letter_id}")
        body = {
            "replayed": str(letter.dead_letter_id),
            "topic": letter.replay_topic,
            "event_id": letter.event_id,
        }
        return self.reply(Replayed, body)


def register_dead_letter_views(app: CoreHost) -> None:
    app.route(
        "/dead-letters",
        tag="dead letters",
        get=Operation(
            "The dead letters, newest first, a page at a time, with counts by reason",
            DASHBOARD_ADMIN,
            {200: Reply("A page of letters (without their bytes)", DeadLettersPage)},
            query=DeadLettersQuery,
            errors=(DependencyUnavailable,),
            description="The newest 10,000 letters are listed; `total` and `by_reason` count all. "
            "Read on every few seconds: a letter is listed within about 3 s.",
        ),
    )(DeadLetters)
    app.route(
        "/dead-letters/{dead_letter_id}/replay",
        tag="dead letters",
        post=Operation(
            "Send a dead letter's original bytes back to its topic (`streamapp dead-letters replay --id`)",
            DASHBOARD_ADMIN,
            {200: Reply("Sent (acknowledged by the broker)", Replayed)},
            errors=(ValidationFailed, NotFound, Forbidden, DependencyUnavailable),
            description="A letter newer than the list's last read (about 3 s) is not found yet. "
            "With the session cookie, a request from another origin is refused (403).",
        ),
    )(Replay)
