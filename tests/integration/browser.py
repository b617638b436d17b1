"""Debian's chromium for the browser tests, driven by playwright (which never downloads a browser here).

CI installs the package (.ci/run) and sets STREAMAPP_REQUIRE_BROWSER=1: a missing
browser then fails the test. On a developer's machine without it the test is
skipped, saying so loudly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("STREAMAPP_CHROMIUM", "/usr/bin/chromium")
# Headless and quiet: no first-run UI, no update or sync traffic, no QUIC probing.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where screenshots go; git ignores it (a CI job can keep it as an artifact).
ARTIFACTS = Path(os.environ.get("STREAMAPP_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))


def chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = (
        f"BROWSER TEST NOT RUN: no chromium at {CHROMIUM} "
        "(apt-get install chromium, or set STREAMAPP_CHROMIUM)"
    )
    if os.environ.get("STREAMAPP_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)
