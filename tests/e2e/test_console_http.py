"""The console's routes and the public reads it added, over HTTP: who may call them,
bounds of their parameters, and that their figures are those of the bookings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.support.fake_stripe import CAR, JET, hold, make_item, pay_and_confirm, wait_until

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FRAGMENTS = ("today", "timeline", "customers", "items", "alerts")


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _json(response: Any) -> Any:
    assert response.status == 200, await response.text()
    return await response.json()


async def test_shells_are_public_and_empty_fragments_are_for_staff_only(
    client: Any, auth: Any
) -> None:
    shell = await client.get("/console/today")
    assert shell.status == 200
    html = await shell.text()
    assert 'data-fragment="/console/fragments/today"' in html
    policy = shell.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert (await client.get("/console", allow_redirects=False)).headers["Location"] == \
        "/console/today"
    script = await client.get("/console/static/console.js")
    assert script.status == 200 and "sessionStorage" in await script.text()
    for page in FRAGMENTS:
        url = f"/console/fragments/{page}"
        assert (await client.get(url)).status == 401, page
        for role in ("customer", "auditor"):
            refused = await client.get(url, headers=auth(role))
            assert refused.status == 403, (page, role)
            assert refused.content_type == "application/problem+json"
        answer = await client.get(url, headers=auth("concierge"))
        assert answer.status == 200, (page, await answer.text())
        assert answer.content_type == "text/html"
    forged = await client.get("/console/fragments/today",
                              headers={"Authorization": "Bearer not-a-token"})
    assert forged.status == 401


async def test_fragment_parameters_are_checked(client: Any, auth: Any) -> None:
    staff = auth("admin")
    bad_zoom = await client.get("/console/fragments/timeline?zoom=year", headers=staff)
    assert bad_zoom.status == 422
    assert (await bad_zoom.json())["errors"][0]["field"] == "query.zoom"
    bad_start = await client.get("/console/fragments/timeline?start=2026-13-01", headers=staff)
    assert bad_start.status == 422
    assert (await client.get("/console/fragments/bookings/not-a-uuid",
                             headers=staff)).status == 404
    assert (await client.get(f"/console/fragments/bookings/{uuid4()}",
                             headers=staff)).status == 404
    # The API's own refusal comes through: a bad location is the timeline API's 422.
    bad_location = await client.get("/console/fragments/timeline?location=nowhere",
                                    headers=staff)
    assert bad_location.status == 422


async def test_timeline_draws_bookings_and_maintenance_within_the_range(
    client: Any, auth: Any
) -> None:
    staff = auth("admin")
    car, jet = await make_item(client, auth), await make_item(client, auth, JET)
    customer = auth("customer", uuid4())
    start = NOW + timedelta(days=3)
    booked = await hold(client, customer, car, start, start + timedelta(days=2))
    window = await client.post(f"/api/v1/items/{jet}/maintenance", headers=staff, json={
        "start": (start + timedelta(days=1)).isoformat(),
        "end": (start + timedelta(days=2)).isoformat(), "note": "engine"})
    assert window.status == 201, await window.text()
    position = (await window.json())["position"]
    params = {"from": NOW.isoformat(), "to": (NOW + timedelta(days=7)).isoformat(),
              "min_position": position}
    view = await _json(await client.get("/api/v1/fleet/timeline", params=params,
                                        headers=staff))
    assert [(i["category"], i["name"]) for i in view["items"]] == [
        ("car", CAR["name"]), ("jet", JET["name"])]
    car_bars, jet_bars = view["items"][0]["bars"], view["items"][1]["bars"]
    assert [(b["id"], b["state"]) for b in car_bars] == [(booked["id"], "held")]
    assert car_bars[0]["start"].startswith(start.date().isoformat())
    assert [(b["state"], b["note"]) for b in jet_bars] == [("maintenance", "engine")]
    assert view["more"] is False
    # Bounds: a range ending where the booking starts leaves it out; one hour more takes it.
    before = {**params, "to": start.isoformat()}
    items = (await _json(await client.get("/api/v1/fleet/timeline", params=before,
                                          headers=staff)))["items"]
    assert items[0]["bars"] == []
    touching = {**params, "to": (start + timedelta(hours=1)).isoformat()}
    items = (await _json(await client.get("/api/v1/fleet/timeline", params=touching,
                                          headers=staff)))["items"]
    assert len(items[0]["bars"]) == 1
    # Paging and filters.
    page = await _json(await client.get("/api/v1/fleet/timeline",
                                        params={**params, "limit": 1}, headers=staff))
    assert [i["name"] for i in page["items"]] == [CAR["name"]] and page["more"] is True
    jets = await _json(await client.get("/api/v1/fleet/timeline",
                                        params={**params, "category": "jet"}, headers=staff))
    assert [i["id"] for i in jets["items"]] == [jet]
    for bad in ({"to": NOW.isoformat()}, {"to": (NOW + timedelta(days=94)).isoformat()},
                {"limit": 0}, {"limit": 501}):
        r = await client.get("/api/v1/fleet/timeline", params={**params, **bad},
                             headers=staff)
        assert r.status == 422, bad
    ninety_three = {**params, "to": (NOW + timedelta(days=93)).isoformat()}
    assert (await client.get("/api/v1/fleet/timeline", params=ninety_three,
                             headers=staff)).status == 200
    assert (await client.get("/api/v1/fleet/timeline", params=params,
                             headers=auth("customer"))).status == 403
    html = await (await client.get("/console/fragments/timeline",
                                   params={"zoom": "week", "start": NOW.date().isoformat(),
                                           "min_position": position},
                                   headers=staff)).text()
    assert f'data-booking="{booked["id"]}"' in html and "state-maintenance" in html


async def test_refund_preview_is_the_refund_given_and_changes_nothing(
    client: Any, auth: Any
) -> None:
    car = await make_item(client, auth)
    owner_id = uuid4()
    owner, stranger, staff = auth("customer", owner_id), auth("customer", uuid4()), \
        auth("admin")
    booking = await hold(client, owner, car, NOW + timedelta(days=30),
                         NOW + timedelta(days=32))
    await pay_and_confirm(client, owner, booking)
    url = f"/api/v1/bookings/{booking['id']}/refund-preview"

    async def paid() -> bool:
        r = await client.get(f"/api/v1/bookings/{booking['id']}", headers=staff)
        return r.status == 200 and (await r.json())["amount_paid"] > 0

    await wait_until(paid)
    mine = await _json(await client.get(url, headers=owner))
    total = booking["quote"]["total_due"]
    assert (mine["amount_paid"], mine["refund_percentage"], mine["refund_amount"]) == (
        total, "100", total)  # 30 days ahead: the full refund
    business = await _json(await client.get(url, params={"reason": "business"},
                                            headers=staff))
    assert business["refund_amount"] == total
    assert (await client.get(url, headers=stranger)).status == 404
    assert (await client.get(url, params={"reason": "business"},
                             headers=owner)).status == 403
    assert (await client.get(url, params={"reason": "whim"}, headers=staff)).status == 422
    assert (await client.get(f"/api/v1/bookings/{uuid4()}/refund-preview",
                             headers=staff)).status == 404
    again = await _json(await client.get(f"/api/v1/bookings/{booking['id']}", headers=staff))
    assert again["status"] == "confirmed"  # previewing changed nothing
    cancelled = await client.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=owner,
                                  json={"reason": "customer"})
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["refund_amount"] == mine["refund_amount"]


async def test_workload_counts_states_balances_and_unassigned_vvip(
    client: Any, auth: Any
) -> None:
    staff = auth("concierge")
    empty = await _json(await client.get("/api/v1/admin/workload", headers=staff))
    assert (empty["bookings_by_state"], empty["balances_due"], empty["deposits_to_authorise"],
            empty["unassigned_vvip"]) == ({}, [], [], 0)
    car = await make_item(client, auth)
    customer = auth("customer", uuid4())
    first = await hold(client, customer, car, NOW + timedelta(days=5),
                       NOW + timedelta(days=6))
    second = await hold(client, customer, car, NOW + timedelta(days=8),
                        NOW + timedelta(days=9))
    await pay_and_confirm(client, customer, second)

    async def counted() -> bool:
        work = await (await client.get("/api/v1/admin/workload", headers=staff)).json()
        return work["bookings_by_state"] == {"held": 1, "confirmed": 1}

    await wait_until(counted)
    work = await _json(await client.get("/api/v1/admin/workload", headers=staff))
    assert work["balances_due"] == [{"currency": "USD", "count": 1,
                                     "amount": first["quote"]["total_due"]}]
    # Paid online eight days ahead: its deposit is authorised six days before the start,
    # so it is not yet to authorise (outside the lead time).
    assert work["deposits_to_authorise"] == []
    assert (await client.get("/api/v1/admin/workload",
                             headers=auth("customer"))).status == 403


def test_a_console_route_without_a_rule_stops_the_service(monkeypatch: Any,
                                                           settings: Any) -> None:
    from midas.app import create_app
    from midas.console import views

    async def handler(request: Any) -> Any:
        raise AssertionError("never called")

    monkeypatch.setitem(views.FRAGMENTS, "/console/fragments/unguarded", handler)
    with pytest.raises(ValueError, match="GET /console/fragments/unguarded"):
        create_app(settings)


async def test_trends_agree_with_the_reports(booking_client: Any, auth: Any,
                                             booking_clock: Any) -> None:
    from decimal import Decimal

    from midas.http.keys import STORE
    from tests.conftest import history_events

    client, staff = booking_client, auth("admin")
    booking_clock.set(datetime(2026, 12, 5, 12, tzinfo=UTC))
    december = datetime(2026, 12, 1, 10, tzinfo=UTC)
    item = await make_item(client, auth)
    last = None
    for rental, refund, complete in ((1_000_00, 0, True), (2_000_00, 500_00, True),
                                     (3_000_00, 0, False)):
        _, appends = history_events(uuid4(), rental=rental, refund=refund, complete=complete,
                                    item=UUID(item), start=december)
        for append in appends:
            last = await client.server.app[STORE].append(append)
    wait = {"min_position": last.last_position}
    trends = await _json(await client.get("/api/v1/admin/trends", headers=staff,
                                          params={**wait, "days": 30, "window": 10}))
    assert (trends["days_from"], trends["window_from"], trends["to"]) == (
        "2026-11-06", "2026-11-26", "2026-12-06")
    financial = await _json(await client.get("/api/v1/reports/financial", headers=staff, params={
        **wait, "from": "2026-11-06", "to": "2026-12-06", "group": "day"}))
    assert [(r["day"], r["currency"], r["net"]) for r in trends["revenue_by_day"]] == [
        (r["key"], r["currency"], r["net"]) for r in financial["rows"]]
    assert sum(r["net"] for r in trends["revenue_by_day"]) == 6_000_00 - 500_00
    operational = await _json(await client.get("/api/v1/reports/operational", headers=staff,
                                               params={**wait, "from": "2026-11-26",
                                                       "to": "2026-12-06", "group": "total"}))
    assert [(f["currency"], f["held"], f["confirmed"], f["completed"])
            for f in trends["funnel"]] == [(r["currency"], r["held"], r["confirmed"],
                                            r["completed"]) for r in operational["rows"]]
    # Utilisation by category: the report's per-item hours, summed (one car here).
    [car] = trends["utilisation_by_category"]
    occupied = sum(Decimal(u["occupied_hours"]) for u in operational["utilisation"])
    available = sum(Decimal(u["available_hours"]) for u in operational["utilisation"])
    assert (car["category"], car["items"]) == ("car", len(operational["utilisation"]))
    assert Decimal(car["occupied_hours"]) == occupied == Decimal(3 * 24)
    assert Decimal(car["available_hours"]) == available
    assert car["utilisation"] == str((occupied / available).quantize(Decimal("0.0001")))
    for bad in ({"days": 0}, {"days": 367}, {"window": 0}, {"window": 367}):
        assert (await client.get("/api/v1/admin/trends", headers=staff,
                                 params=bad)).status == 422, bad
    assert (await client.get("/api/v1/admin/trends", headers=staff,
                             params={"days": 366, "window": 366})).status == 200
    assert (await client.get("/api/v1/admin/trends",
                             headers=auth("customer"))).status == 403
