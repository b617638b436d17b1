"""Reply models shared by several routes' declarations (the OpenAPI document shows them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

# Times go out as the views have always written them (Python's isoformat, with the offset).
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Accepted(BaseModel):
    """202: the events are durable in the topic; processing follows."""

    status: Literal["accepted"]
    event_ids: list[str]


class AcceptedOne(BaseModel):
    status: Literal["accepted"]
    event_id: str
