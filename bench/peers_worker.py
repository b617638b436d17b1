"""`streamapp worker` with only the named pipelines: the real worker, fewer agents.

    python -m bench.peers_worker licenses

The same entry point as `streamapp worker` (settings, nice value, the Worker
class, Faust's boot); only the app factory is given the pipelines to register, so
the other pipelines' agents do not poll their empty topics during a measurement.
The licenses records processor's `plan` marks the first batch it is given
(bench/marker.py): one extra call per batch, the start of consumption for the bench.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial
from typing import Any
from unittest import mock

import streamapp.app
from bench.marker import mark_first
from streamapp.agents.licenses import RecordProcessor
from streamapp.pipeline import discover_pipelines
from streamapp.processes import run_worker
from streamapp.settings import load_settings

_plan = RecordProcessor.plan


def _marked_plan(self: RecordProcessor, events: Any) -> Any:
    mark_first()
    return _plan(self, events)


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or ["licenses"]
    factory = partial(streamapp.app.create_app, pipelines=discover_pipelines(names))
    with (
        mock.patch.object(streamapp.app, "create_app", factory),
        mock.patch.object(RecordProcessor, "plan", _marked_plan),
    ):
        return run_worker(load_settings())


if __name__ == "__main__":
    sys.exit(main())
