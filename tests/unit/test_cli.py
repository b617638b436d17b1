"""A worker yields the CPU to the ingest tier: nice, SCHED_BATCH and (own session) its autogroup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, os
from streamapp.cli import yield_cpu
yield_cpu(3)
print(json.dumps({
    "nice": os.nice(0),
    "policy": os.sched_getscheduler(0),
    "autogroup": open("/proc/self/autogroup").read(),
}))
"""

AUTOGROUPS = Path("/proc/sys/kernel/sched_autogroup_enabled")
pytestmark = pytest.mark.skipif(
    not AUTOGROUPS.exists() or AUTOGROUPS.read_text().strip() != "1", reason="needs Linux autogroups"
)


def probe(*, new_session: bool) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=new_session,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_a_worker_in_its_own_session_lowers_its_autogroup_too() -> None:
    result = probe(new_session=True)
    assert result["nice"] == min(19, os.nice(0) + 3)
    assert result["policy"] == os.SCHED_BATCH
    assert str(result["autogroup"]).strip().endswith("nice 3")


def test_a_worker_sharing_a_session_leaves_the_group_alone() -> None:
    ours = Path("/proc/self/autogroup").read_text()
    result = probe(new_session=False)
    assert result["nice"] == min(19, os.nice(0) + 3)
    assert result["policy"] == os.SCHED_BATCH
    assert result["autogroup"] == ours  # the same group, with the same nice
