"""The staff console in a real browser: Debian's chromium driven by Playwright.

The browser is the system's (its path, ``chromium`` on PATH); nothing is downloaded.
Screenshots of each page go to ``test-artifacts/console/`` (kept after the run).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright import async_api as playwright_api

from commands.accounts import create_account
from midas.http.keys import REPOSITORY
from tests.e2e.auth_support import PASSWORD, bearer, register, signed_in, verify_email
from tests.support.fake_stripe import hold, make_item, pay_and_confirm, wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STAFF_EMAIL = "console-admin@example.com"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed (.ci/run installs it: apt-get install"
                    " chromium)")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium(),
                                           args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _staff(client: Any, role: str = "super_admin") -> None:
    await create_account(client.server.app[REPOSITORY], email=STAFF_EMAIL, name="Console Admin",
                         password=PASSWORD, rounds=4, role=role,
                         metadata={"actor": "test", "actor_role": "system"})


async def _sign_in(page: Any, client: Any, email: str) -> None:
    await page.goto(str(client.make_url("/console/sign-in")))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _loaded(page: Any) -> None:
    await page.wait_for_selector("main#content[data-loaded]")


async def test_staff_signs_in_sees_the_apis_figures_and_cancels_from_the_timeline(
    client: Any, auth: Any, browser: Any
) -> None:
    await _staff(client)
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    paid = await hold(client, customer, car, NOW + timedelta(days=10),
                      NOW + timedelta(days=12))
    await pay_and_confirm(client, customer, paid)
    other = await hold(client, customer, car, NOW + timedelta(days=20),
                       NOW + timedelta(days=21))  # a hold, left unpaid: a balance due
    staff = auth("admin")

    async def projected() -> bool:
        r = await client.get("/api/v1/admin/workload", headers=staff)
        work = await r.json()
        return work["bookings_by_state"].get("confirmed") == 1 and \
            work["bookings_by_state"].get("held") == 1

    await wait_until(projected)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await _sign_in(page, client, STAFF_EMAIL)
    await page.wait_for_url("**/console/today")
    await _loaded(page)
    await _shot(page, "today")

    # The tiles show the API's own figures.
    work = await (await client.get("/api/v1/admin/workload", headers=staff)).json()
    dash = await (await client.get("/api/v1/admin/dashboard", headers=staff)).json()
    for state in ("held", "confirmed", "active", "cancelled"):
        shown = await page.locator(f'[data-figure="bookings.{state}"]').inner_text()
        assert int(shown) == work["bookings_by_state"].get(state, 0), state
    due = sum(m["count"] for m in work["balances_due"])
    assert due == 1
    assert int(await page.locator('[data-figure="balances"]').inner_text()) == due
    owed = await (await client.get("/api/v1/reports/receivables", headers=staff)).json()
    for row in owed["currencies"]:
        tile = page.locator(f'[data-figure="instalments.{row["currency"]}"]')
        if row["overdue"] or row["due_30_days"]:
            assert int(await tile.get_attribute("data-overdue")) == row["overdue"]
            assert int(await tile.get_attribute("data-due30")) == row["due_30_days"]
        else:
            assert await tile.count() == 0
    assert int(await page.locator('[data-figure="vvip"]').inner_text()) == \
        work["unassigned_vvip"]
    for row in dash["this_month"]:
        cell = page.locator(f'[data-figure="revenue.month.{row["currency"]}"]')
        assert int(await cell.get_attribute("data-minor")) == row["net"]
    assert dash["this_month"], "the paid booking's revenue is in this month"
    assert await page.locator("svg.chart").count() >= 2  # revenue, utilisation, funnel

    # The timeline, a month from today: the paid booking's bar opens the booking.
    await page.get_by_role("link", name="Fleet timeline").click()
    await _loaded(page)
    await page.get_by_role("link", name="Month").click()
    await _loaded(page)
    await _shot(page, "timeline")
    bar = page.locator(f'a[data-booking="{paid["id"]}"]')
    assert await bar.count() == 1
    assert await page.locator(f'a[data-booking="{other["id"]}"] rect.state-held').count() == 1
    await bar.click()
    await page.wait_for_url(f"**/console/bookings/{paid['id']}")
    await _loaded(page)
    await _shot(page, "booking")

    # Each instalment of the booking's payment schedule, as the API lists it.
    plan = (await (await client.get(f"/api/v1/bookings/{paid['id']}/payments",
                                    headers=staff)).json())["instalments"]
    assert plan, "a paid booking has a payment schedule"
    rows = page.locator("tr[data-instalment]")
    assert await rows.count() == len(plan)
    for i in plan:
        cells = await page.locator(f'tr[data-instalment="{i["number"]}"] td').all_inner_texts()
        assert cells[1] == f"{Decimal(i['amount']) / 100:,.2f} {i['currency']}"
        assert cells[3].startswith(i["state"])

    # The refund is shown before cancelling, and it is the one given.
    preview = await (await client.get(f"/api/v1/bookings/{paid['id']}/refund-preview",
                                      headers=staff)).json()
    assert preview["refund_amount"] > 0
    shown = await page.locator('[data-refund="customer"]').inner_text()
    assert shown == f"{Decimal(preview['refund_amount']) / 100:,.2f} USD"
    await page.get_by_role("button", name="Cancel booking").click()
    await page.wait_for_selector('[data-field="status"]:has-text("cancelled")')
    status = await page.locator("#status").inner_text()
    assert f"refund {preview['refund_amount'] / 100:.2f}" in status
    refund = await page.locator('[data-field="refund"]').inner_text()
    assert refund.startswith(shown)
    booking = await (await client.get(f"/api/v1/bookings/{paid['id']}", headers=staff)).json()
    assert (booking["status"], booking["refund_amount"]) == ("cancelled",
                                                             preview["refund_amount"])
    await _shot(page, "booking-cancelled")

    for name, path in (("customers", "/console/customers"), ("items", "/console/items"),
                       ("item", f"/console/items/{car}"), ("alerts", "/console/alerts"),
                       ("customer", f"/console/customers/{booking['customer_id']}")):
        await page.goto(str(client.make_url(path)))
        await _loaded(page)
        assert await page.locator("p.error").count() == 0, name
        await _shot(page, name)
    await page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright
    await page.goto(str(client.make_url("/console/today")))
    await _loaded(page)
    await _shot(page, "today-tablet")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/sign-in")
    assert await page.evaluate("sessionStorage.length") == 0


async def test_a_customer_is_refused(client: Any, browser: Any) -> None:
    await register(client, email="guest@example.com")
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await _sign_in(page, client, "guest@example.com")
    await page.wait_for_url("**/console/sign-in?**why=**")
    await page.wait_for_selector("#sign-in-error:has-text('staff only')")
    await _shot(page, "customer-refused")
    assert await page.evaluate("sessionStorage.length") == 0


async def test_staff_work_through_the_forms_and_the_keyboard(
    client: Any, auth: Any, browser: Any
) -> None:
    await _staff(client)
    concierge_email = "concierge@example.com"
    await create_account(client.server.app[REPOSITORY], email=concierge_email,
                         name="Carla Concierge", password=PASSWORD, rounds=4, role="concierge",
                         metadata={"actor": "test", "actor_role": "system"})
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await _sign_in(page, client, STAFF_EMAIL)
    await page.wait_for_url("**/console/today")

    # Register an item with the form: the page opens it.
    await page.goto(str(client.make_url("/console/items")))
    await _loaded(page)
    await page.get_by_label("Name").fill("Riva Aquarama")
    await page.get_by_label("Category", exact=True).last.select_option("yacht")
    await page.get_by_label("Location", exact=True).last.fill("US-FL")
    await page.get_by_label("Rate (per unit, major units)").fill("2500.50")
    await page.get_by_role("button", name="Register").click()
    await page.wait_for_url("**/console/items/*?min_position=*")  # reads its own write
    await _loaded(page)
    item_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    item = await (await client.get(f"/api/v1/items/{item_id}")).json()
    assert (item["name"], item["category"], item["rate"]) == ("Riva Aquarama", "yacht",
                                                              250_050)
    # Change its rate; schedule maintenance and remove it.
    await page.get_by_label("New rate").fill("3000")
    await page.get_by_role("button", name="Change rate").click()
    await page.wait_for_selector('[data-field="rate"]:has-text("3,000.00")')
    await page.get_by_label("Start (your time)").fill("2026-11-20T09:00")
    await page.get_by_label("End (your time)").fill("2026-11-21T09:00")
    await page.get_by_label("Note").fill("hull polish")
    await page.get_by_role("button", name="Schedule").click()
    remove = page.get_by_role("button", name="Remove the window from")
    await remove.wait_for()
    await _shot(page, "item-maintenance")
    await remove.click()
    await page.wait_for_selector("text=No maintenance planned.")

    # A booking on the new item, then found with the keyboard on the timeline.
    created = await register(client, email="ada@example.com")
    tokens = await signed_in(client, "ada@example.com")
    await verify_email(client, tokens)
    customer, customer_id = bearer(tokens), created["id"]
    booked = await hold(client, customer, item_id, NOW + timedelta(days=2),
                        NOW + timedelta(days=3))
    await page.goto(str(client.make_url(
        f"/console/timeline?zoom=week&start={NOW.date().isoformat()}"
        f"&min_position={booked['position']}")))  # a page link may carry the position
    await _loaded(page)
    bar = page.locator(f'a[data-booking="{booked["id"]}"]')
    await bar.wait_for()
    await bar.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/console/bookings/{booked['id']}")
    await _loaded(page)

    # A note on the customer, in the 360 view.
    await page.goto(str(client.make_url(f"/console/customers/{customer_id}")))
    await _loaded(page)
    await page.get_by_label("Add a note").fill("Prefers a morning handover.")
    await page.get_by_role("button", name="Add note").click()
    await page.wait_for_selector(".notes li:has-text('Prefers a morning handover.')")
    await _shot(page, "customer-note")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/sign-in")

    # A concierge may confirm, not declare force majeure: the API's refusal is shown.
    await _sign_in(page, client, concierge_email)
    await page.wait_for_url("**/console/today")
    await page.goto(str(client.make_url(f"/console/bookings/{booked['id']}")))
    await _loaded(page)
    await page.get_by_role("button", name="Declare force majeure").click()
    await page.wait_for_selector("#status.error:has-text('Your role may not do this')")
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_selector('[data-field="status"]:has-text("confirmed")')
    # the booking's story from the audit API, open to concierges too
    await page.wait_for_selector("#b-story + ol.story li:has-text('confirmed')")
    story = await page.locator("#b-story + ol.story").inner_text()
    assert "audit log refused" not in story

    # The concierge moves the end earlier: proposed first (priced), then applied.
    change = page.locator("#change-form")
    await change.get_by_label("New end (UTC)").fill("2026-11-02T12:00")  # before the start
    await change.get_by_role("button", name="Propose the change").click()
    await change.locator("[data-proposal].error:has-text('end must be after start')").wait_for()
    assert await change.get_by_role("button", name="Apply the change").is_hidden()
    # Into another booking's window: the busy window and the reason, and no Apply button.
    await hold(client, customer, item_id, NOW + timedelta(days=4), NOW + timedelta(days=5))
    await change.get_by_label("New end (UTC)").fill("2026-11-05T12:00")
    await change.get_by_role("button", name="Propose the change").click()
    await change.locator("[data-proposal].error:has-text('Cannot apply')").wait_for()
    busy = await change.locator("[data-proposal]").inner_text()
    assert "Busy: 2026-11-05T12:00:00+00:00 to 2026-11-06" in busy, busy  # with turnaround
    assert await change.get_by_role("button", name="Apply the change").is_hidden()
    await change.get_by_label("New end (UTC)").fill("2026-11-04T06:00")  # six hours earlier
    await change.get_by_role("button", name="Propose the change").click()
    # The busy proposal above stays on screen until the new one replaces it: wait
    # for the new end, not for any proposal.
    await change.locator(
        "[data-proposal]:has-text('to 2026-11-04T06:00:00+00:00'):has-text('Difference')"
    ).wait_for()
    proposal = await change.locator("[data-proposal]").inner_text()
    assert "Difference: -" in proposal and "to pay: 0.00" in proposal  # shorter: cheaper
    assert "refund:" in proposal
    unchanged = await (await client.get(f"/api/v1/bookings/{booked['id']}",
                                        headers=customer)).json()
    assert unchanged["ends_at"].startswith("2026-11-04T12:00")  # a proposal records nothing
    await change.get_by_role("button", name="Apply the change").click()
    await page.wait_for_selector('[data-field="ends_at"]:has-text("2026-11-04 06:00 UTC")')
    assert await page.locator('[data-field="starts_at"]').inner_text() == "2026-11-03 12:00 UTC"
    changed = await (await client.get(f"/api/v1/bookings/{booked['id']}",
                                       headers=customer)).json()
    assert changed["ends_at"].startswith("2026-11-04T06:00")
    await _shot(page, "booking-changed")
    await _shot(page, "booking-concierge")
