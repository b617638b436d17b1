"""Per-user task reports over an event-time interval [start, end), computed from transitions."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from streamapp.models.tasks import Transition

_STATUS_AFTER = {"created": "open", "completed": "completed", "reopened": "open", "deleted": "deleted"}


class TaskRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    content: str


class ReportContent(BaseModel):
    """The report itself; `digest()` tells whether a recomputation changed anything."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    start: datetime
    end: datetime
    created: list[TaskRef]
    completed: list[TaskRef]
    deleted: list[TaskRef]
    open: list[TaskRef]
    counts: dict[str, int]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def interval_of(ts: datetime, seconds: float) -> tuple[datetime, datetime]:
    """The aligned interval (multiples of `seconds` since the epoch) holding `ts`."""
    epoch = ts.timestamp()
    start = math.floor(epoch / seconds) * seconds
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start, UTC) + timedelta(seconds=seconds)


def build_report(
    user_id: str, start: datetime, end: datetime, tasks: Mapping[str, Iterable[Transition]]
) -> ReportContent:
    """What happened to the user's tasks in [start, end), and which are open at `end`.

    A task is listed with its content as of `end`. Completed-then-reopened inside
    the interval still counts as completed in it: it was.
    """
    created: list[TaskRef] = []
    completed: list[TaskRef] = []
    deleted: list[TaskRef] = []
    still_open: list[TaskRef] = []
    for task_id in sorted(tasks):
        before_end = [t for t in tasks[task_id] if t.at < end]
        if not before_end:
            continue
        ref = TaskRef(id=task_id, content=before_end[-1].content)
        inside = {t.kind for t in before_end if t.at >= start}
        if "created" in inside:
            created.append(ref)
        if "completed" in inside:
            completed.append(ref)
        if "deleted" in inside:
            deleted.append(ref)
        status = "unknown"
        for transition in before_end:
            status = _STATUS_AFTER.get(transition.kind, status)
        if status == "open":
            still_open.append(ref)
    return ReportContent(
        user_id=user_id,
        start=start,
        end=end,
        created=created,
        completed=completed,
        deleted=deleted,
        open=still_open,
        counts={
            "created": len(created),
            "completed": len(completed),
            "deleted": len(deleted),
            "open": len(still_open),
        },
    )


# Past this many characters an encoded user id is cut and a hash of the whole id
# added, so that a name stays under the 255 bytes file systems allow.
MAX_ENCODED_ID = 150


def file_safe_id(user_id: str) -> str:
    """An injective, file-name-safe form of a user id: `user/1` and `user_1` stay apart.

    Percent-encoding of the UTF-8 bytes, keeping letters, digits and `_ . -` (so
    plain ids read as before). `~` never appears in it, so a long id's form
    `<prefix>~<sha256>` cannot be forged by a short id.
    """
    # surrogatepass: a JSON string may hold a lone surrogate; it still gets a name.
    encoded = quote(user_id, safe="", errors="surrogatepass").replace("~", "%7E")
    if len(encoded) <= MAX_ENCODED_ID:
        return encoded
    digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{encoded[:100]}~{digest}"


def report_filename(user_id: str, start: datetime, end: datetime) -> str:
    """`task_report_{user_id}_{start}_{end}.json`, the name existing consumers read."""

    def stamp(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return f"task_report_{file_safe_id(user_id)}_{stamp(start)}_{stamp(end)}.json"


def report_document(content: ReportContent, revision: int, generated_at: datetime) -> bytes:
    body = {**content.model_dump(mode="json"), "revision": revision, "generated_at": generated_at.isoformat()}
    return json.dumps(body, indent=2, sort_keys=True).encode()
