"""Debian's chromium for the browser tests, driven by playwright (which never downloads a browser here).

CI installs the package (.ci/run) and sets STREAMAPP_REQUIRE_BROWSER=1: a missing
browser then fails the test. On a developer's machine without it the test is
skipped, saying so loudly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

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
        ARTIFACTS.mkdir(parents=True, exist_ok=True)  # for the screenshots a browser test takes
        return CHROMIUM
    message = (
        f"BROWSER TEST NOT RUN: no chromium at {CHROMIUM} "
        "(apt-get install chromium, or set STREAMAPP_CHROMIUM)"
    )
    if os.environ.get("STREAMAPP_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def chromium_page(width: int, height: int) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page of a headless Chromium (skipped or failed as `chromium_or_skip` says), and the
    page errors it raises; the browser is closed afterwards, whatever happened."""
    browser_path = chromium_or_skip()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            await browser.close()
