"""/docs in a real headless Chromium: the packaged Swagger UI renders every operation, offline."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.integration.browser import ARTIFACTS, chromium_page
from tests.integration.conftest import ADMIN, Client
from tests.integration.stack import Worker


async def test_the_api_docs_page_in_chromium(worker: Worker, client: Client) -> None:
    status, document = await client.get("/openapi.json", token=ADMIN)
    assert status == 200
    methods = ("get", "post", "put", "delete")
    operations = sum(1 for item in document["paths"].values() for method in item if method in methods)
    assert operations > 20
    async with chromium_page(1280, 900) as (page, errors):
        # Offline: every request the page makes goes to the worker itself (no CDN, no validator).
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
        await page.goto(worker.url + "/docs")
        # The document is open in dev without a read token (this worker); elsewhere the page
        # asks for a token first (tests/unit/web/test_openapi.py covers that refusal).
        await page.wait_for_selector(".opblock, #token-form:not([hidden])", timeout=30_000)
        if await page.locator("#token-form").is_visible():
            await page.fill("#token", ADMIN)
            await page.click("#token-form button[type=submit]")
        await page.wait_for_selector(".opblock", timeout=30_000)
        assert await page.locator(".opblock").count() == operations
        # One operation opens with its security and responses, as a reader would use it.
        await page.locator(".opblock-summary-path", has_text="/licenses/{customer_id}").first.click()
        await page.wait_for_selector(".opblock.is-open .responses-table", timeout=10_000)
        await page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=False)
        assert errors == []
        assert hosts == {urlsplit(worker.url).netloc}, hosts
