"""The heuristic pool's processes end with the worker that owns them, even after a SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

WATCH = (
    "from streamapp.services.merchants import exit_when_gone; import sys; exit_when_gone({pid}); sys.exit(3)"
)


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_a_pool_process_exits_when_its_owner_is_killed(pidfd: bool) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code = WATCH.format(pid=owner.pid)
    if not pidfd:
        code = "import os; del os.pidfd_open; " + code
    watcher = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.5)
        assert watcher.poll() is None  # the owner is alive: keep working
        owner.kill()
        owner.wait()
        # os._exit(0) from the watch, not the sys.exit(3) after it.
        assert watcher.wait(timeout=10) == 0
    finally:
        for proc in (owner, watcher):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_an_owner_already_gone_ends_the_process_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    watcher = subprocess.Popen([sys.executable, "-c", WATCH.format(pid=gone.pid)])
    assert watcher.wait(timeout=10) == 0
