"""Reports and the dashboard over HTTP: JSON and CSV, ranges, permissions."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from midas.http.keys import STORE
from tests.conftest import history_events

DECEMBER = datetime(2026, 12, 1, 10, tzinfo=UTC)


async def _seed(client: Any) -> dict[str, Any]:
    last = None
    item = uuid4()
    for rental, refund in ((1_000_00, 0), (2_000_00, 500_00), (3_000_00, 0)):
        _, appends = history_events(uuid4(), rental=rental, refund=refund, item=item,
                                    start=DECEMBER)
        for append in appends:
            last = await client.server.app[STORE].append(append)
    _, appends = history_events(uuid4(), rental=7_000_00, currency="EUR", complete=False,
                                start=DECEMBER)
    for append in appends:
        last = await client.server.app[STORE].append(append)
    return {"min_position": last.last_position}


async def test_financial_and_operational_reports_as_json_and_csv(
    booking_client: Any, auth: Any, booking_clock: Any
) -> None:
    client = booking_client
    booking_clock.set(datetime(2026, 11, 25, 12, tzinfo=UTC))
    wait = await _seed(client)
    staff = auth("admin")
    params = {**wait, "from": "2026-11-01", "to": "2026-12-31", "group": "month"}
    r = await client.get("/api/v1/reports/financial", params=params, headers=staff)
    assert r.status == 200, await r.text()
    report = await r.json()
    # Paid on 2026-11-21 (ten days before the start); the refund on the end day (Dec 2).
    assert {(row["currency"], row["key"]): (row["gross"], row["refunds"], row["net"])
            for row in report["rows"]} == {
        ("EUR", "2026-11"): (7_000_00, 0, 7_000_00),
        ("USD", "2026-11"): (6_000_00, 0, 6_000_00),
        ("USD", "2026-12"): (0, 500_00, -500_00)}
    assert {t["currency"]: t["net"] for t in report["totals"]} == {
        "EUR": 7_000_00, "USD": 5_500_00}
    # On the books at the clock's now (Nov 25): confirmed by then, starting within 30 days.
    forecast = {(f["days"], f["currency"]): f["on_the_books"] for f in report["forecast"]}
    assert forecast[(30, "USD")] == 6_000_00 and forecast[(30, "EUR")] == 7_000_00

    ops = await client.get("/api/v1/reports/operational", headers=staff, params={
        **wait, "from": "2026-11-01", "to": "2026-12-31", "group": "total"})
    body = await ops.json()
    usd = next(r for r in body["rows"] if r["currency"] == "USD")
    assert (usd["held"], usd["confirmed"], usd["completed"], usd["conversion"],
            usd["average_booking_value"]) == (3, 3, 3, "1.0000", 2_000_00)
    assert body["utilisation"] and all("utilisation" in u for u in body["utilisation"])

    csv_by_header = await client.get("/api/v1/reports/financial", headers={
        **staff, "Accept": "text/csv"}, params=params)
    assert csv_by_header.status == 200
    assert csv_by_header.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await csv_by_header.text())))
    assert {(r["currency"], r["key"], r["net"]) for r in rows} == {
        ("EUR", "2026-11", "700000"), ("USD", "2026-11", "600000"),
        ("USD", "2026-12", "-50000")}
    csv_by_param = await client.get("/api/v1/reports/operational", headers=staff,
                                    params={**params, "format": "csv"})
    assert (await csv_by_param.text()).startswith("currency,key,held,confirmed")

    customers = await client.get("/api/v1/reports/customers", headers=staff, params=params)
    assert customers.status == 200
    assert {r["key"] for r in (await customers.json())["rows"]} >= {"standard"}

    backwards = await client.get("/api/v1/reports/financial", headers=staff,
                                 params={"from": "2026-12-01", "to": "2026-11-01"})
    assert backwards.status == 422
    for role in ("customer",):
        denied = await client.get("/api/v1/reports/financial", headers=auth(role),
                                  params=params)
        assert denied.status == 403


async def test_dashboard(booking_client: Any, auth: Any) -> None:
    client = booking_client
    wait = await _seed(client)
    r = await client.get("/api/v1/admin/dashboard", headers=auth("concierge"), params=wait)
    assert r.status == 200, await r.text()
    view = await r.json()
    assert set(view) == {"at", "today", "this_month", "live"}
    assert view["live"]["active_rentals"] == 0 and view["live"]["pending_holds"] == 0
    assert set(view["live"]) >= {"revenue_today", "utilisation_now", "deposits_held",
                                 "open_disputes", "items_occupied"}
    denied = await client.get("/api/v1/admin/dashboard", headers=auth("customer"))
    assert denied.status == 403
