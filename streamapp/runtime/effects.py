"""What a processor's plan asks the runtime to do: rows, messages, table state, and refused events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from streamapp.publishing import Output
from streamapp.typing import Event

__all__ = ["INVALID", "REJECTED", "Effects", "Invalid", "Output", "StateWrite"]

R = TypeVar("R")

# The two kinds of failure a dead letter can record. A reader switches on these.
INVALID = "invalid"  # the plan refused the event: it does not decode, validate or obey the rules
REJECTED = "rejected"  # applying the event's effects failed for good (PostgreSQL data, message size ...)


class StateWrite(NamedTuple):
    """`table[key] = value`, with the changelog on `partition` (the source event's, for co-partitioning).

    A named tuple, as `Output` is: cheap to make, and immutable.

    With a runtime given `encode_state`, `value` is the processor's own object and
    `encode_state(value)` the changelog value (see `BatchRuntime`).
    """

    key: Any
    value: Any
    partition: int


@dataclass(frozen=True, slots=True)
class Invalid:
    """An event the plan refused, and why; the runtime dead-letters it before anything else."""

    event: Event
    detail: str
    event_id: str | None = None


@dataclass(slots=True)
class Effects(Generic[R]):
    """Everything one batch changes, applied by the runtime in the order its fields are listed."""

    invalid: list[Invalid] = field(default_factory=list)
    rows: list[R] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    state: list[StateWrite] = field(default_factory=list)
