"""The docs page in a real browser (Debian's chromium, driven by Playwright): Swagger UI
renders the document under the page's Content-Security-Policy, loads nothing from another
host, "Authorize" takes a bearer token that survives a reload, and "Try it out" calls the
service with it."""

from __future__ import annotations

import shutil
from typing import Any
from uuid import uuid4

from playwright.async_api import async_playwright

from midas.config import Settings
from midas.http.auth import Role, issue_access_token

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LIST_BOOKINGS = "#operations-bookings-list_bookings"


async def test_swagger_ui_authorizes_keeps_the_token_and_tries_an_operation(
        app_client: Any, auth: Any, settings: Settings) -> None:
    customer = uuid4()
    auth("customer", customer)  # the account's sign-in row
    token = issue_access_token(settings, customer, Role.CUSTOMER)
    base = str(app_client.make_url("/")).rstrip("/")
    console: list[str] = []
    elsewhere: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                   args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("request", lambda r: None if r.url.startswith((base, "data:"))
                    else elsewhere.append(r.url))
            await page.goto(f"{base}/docs")
            await page.wait_for_selector(LIST_BOOKINGS, timeout=30_000)
            assert await page.locator(".opblock").count() > 100  # every operation

            # Without a token, the call is refused.
            block = page.locator(LIST_BOOKINGS)
            await _try(block)
            assert await _status(block) == "401"

            # "Authorize" with the bearer token; the lock closes.
            await page.click("button.authorize")
            modal = page.locator(".modal-ux")
            await modal.locator("input").first.fill(token)
            await modal.locator("button.authorize").click()
            await modal.locator("button.btn-done").click()
            assert await page.locator("button.authorize.locked").count() == 1

            # A reload keeps it (persistAuthorization), and "Try it out" sends it.
            await page.reload()
            await page.wait_for_selector(LIST_BOOKINGS, timeout=30_000)
            assert await page.locator("button.authorize.locked").count() == 1
            block = page.locator(LIST_BOOKINGS)
            await _try(block)
            assert await _status(block) == "200"
            assert '"bookings"' in await block.locator(".live-responses-table").inner_text()
        finally:
            await browser.close()
    assert elsewhere == []
    refused = [m for m in console if "Content Security Policy" in m]
    assert refused == []


async def _try(block: Any) -> None:
    """Open the operation (if closed), "Try it out", "Execute"."""
    if await block.locator(".try-out__btn").count() == 0:
        await block.locator(".opblock-summary").first.click()
    if await block.locator("button.execute").count() == 0:
        await block.locator(".try-out__btn").click()
    await block.locator("button.execute").click()


async def _status(block: Any) -> str:
    cell = block.locator(".live-responses-table tr.response .response-col_status").first
    await cell.wait_for(timeout=15_000)
    return (await cell.inner_text()).strip()
