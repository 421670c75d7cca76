"""Duration discounts and stay rules over HTTP: set by admins as events, applied to quotes
and holds, refusals naming the rule and the dates."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from midas.http.keys import DATABASE
from tests.e2e.test_bookings_http import NOW, VILLA, _book, _item, _stay

DUBAI = "+04:00"
RULES = {
    "minimum_stays": [{"category": "property", "season": "peak", "nights": 7}],
    "changeovers": [{"category": "yacht", "season": "high", "weekday": "saturday",
                     "location": "AE-DU"}],
    "advance_notice_hours": 48,
    "horizon_days": 400,
}
WEEKLY = {"tiers": [{"min_nights": 7, "percentage": "10"},
                    {"min_nights": 28, "percentage": "20"}]}


@pytest.fixture
def client(booking_client: Any) -> Any:
    return booking_client


async def _set_rules(client: Any, auth: Any) -> None:
    admin = auth("admin")
    rules = await client.put("/api/v1/pricing/stay-rules", json=RULES, headers=admin)
    assert rules.status == 200, await rules.text()
    discounts = await client.put("/api/v1/pricing/duration-discounts/property", json=WEEKLY,
                                 headers=admin)
    assert discounts.status == 200, await discounts.text()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text + DUBAI)


async def test_a_peak_villa_for_5_nights_is_refused_naming_the_rule_7_nights_gets_the_weekly_discount(  # noqa: E501
    client: Any, auth: Any,
) -> None:
    villa = await _item(client, auth, VILLA)
    await _set_rules(client, auth)
    customer = auth("customer")
    start = _at("2026-12-20T15:00:00")
    short = _stay(villa, start, _at("2026-12-25T11:00:00"))
    for refused in (await client.post("/api/v1/quotes", json=short),
                    await client.post("/api/v1/bookings", json=short, headers=customer)):
        assert refused.status == 422
        assert refused.content_type == "application/problem+json"
        problem = await refused.json()
        assert problem["rule"] == "minimum_stay"
        assert (problem["dates"]["arrival"], problem["dates"]["departure"]) == (
            "2026-12-20", "2026-12-25")
        assert (problem["dates"]["nights"], problem["dates"]["minimum_nights"]) == (5, 7)
        assert "2026-12-20" in problem["detail"] and "peak" in problem["detail"]
        assert problem["errors"][0]["field"] == "body.end"

    week = await _book(client, customer, villa, start, _at("2026-12-27T11:00:00"))
    assert week.status == 201, await week.text()
    q = (await week.json())["quote"]
    assert q["nights"] == 7 and len(q["lines"]) == 7
    assert {line["season"] for line in q["lines"]} == {"peak"}
    assert (q["rental_subtotal"], q["duration_discount_rate"], q["duration_discount"]) == (
        15_750_000, "0.1", 1_575_000)
    assert (q["rental"], q["insurance"], q["tax"], q["total_due"]) == (
        14_175_000, 1_417_500, 779_625, 16_372_125)
    # Outside peak no minimum stay: 5 nights in May are accepted, without discount.
    may = await client.post("/api/v1/quotes", json=_stay(
        villa, _at("2027-05-03T15:00:00"), _at("2027-05-08T11:00:00")))
    assert may.status == 200
    assert (await may.json())["duration_discount"] == 0
    month = await (await client.post("/api/v1/quotes", json=_stay(
        villa, _at("2027-05-03T15:00:00"), _at("2027-05-31T11:00:00")))).json()
    assert (month["nights"], month["duration_discount_rate"]) == (28, "0.2")
    just_short = await (await client.post("/api/v1/quotes", json=_stay(
        villa, _at("2027-05-03T15:00:00"), _at("2027-05-30T11:00:00")))).json()
    assert (just_short["nights"], just_short["duration_discount_rate"]) == (27, "0.1")


async def test_changeover_days_advance_notice_and_horizon(client: Any, auth: Any) -> None:
    yacht = await _item(client, auth, {"name": "Azimut", "category": "yacht",
                                       "location": "AE-DU", "rate": 200_000})
    await _set_rules(client, auth)
    saturday = _at("2026-11-14T16:00:00")  # in Dubai's high season
    assert saturday.weekday() == 5
    week = _stay(yacht, saturday, saturday + timedelta(days=7))
    assert (await client.post("/api/v1/quotes", json=week)).status == 200
    sunday = await client.post("/api/v1/quotes", json=_stay(
        yacht, saturday + timedelta(days=1), saturday + timedelta(days=8)))
    assert sunday.status == 422
    problem = await sunday.json()
    assert problem["rule"] == "changeover_day" and problem["dates"]["weekday"] == "saturday"
    assert "2026-11-15" in problem["detail"]
    low = _at("2027-06-06T10:00:00")  # a Sunday in low season: no changeover rule
    assert (await client.post("/api/v1/quotes", json=_stay(
        yacht, low, low + timedelta(days=2)))).status == 200

    car = await _item(client, auth)  # no changeover rule for cars
    soon = _stay(car, NOW + timedelta(hours=47), NOW + timedelta(hours=53))
    customer = await client.post("/api/v1/bookings", json=soon, headers=auth("customer"))
    assert customer.status == 422
    problem = await customer.json()
    assert problem["rule"] == "advance_notice"
    assert problem["dates"]["earliest"] == (NOW + timedelta(hours=48)).isoformat()
    exactly = _stay(car, NOW + timedelta(hours=48), NOW + timedelta(hours=54))
    assert (await client.post("/api/v1/quotes", json=exactly)).status == 200
    staff = await client.post("/api/v1/bookings", json=soon, headers=auth("concierge"))
    assert staff.status == 201, await staff.text()  # staff override the notice

    far = NOW + timedelta(days=400, hours=1)
    beyond = await client.post("/api/v1/quotes", json=_stay(car, far, far + timedelta(days=1)))
    assert beyond.status == 422 and (await beyond.json())["rule"] == "horizon"
    edge = NOW + timedelta(days=400)
    assert (await client.post("/api/v1/quotes", json=_stay(
        car, edge, edge + timedelta(days=1)))).status == 200


async def test_rules_are_events_read_back_and_validated(client: Any, auth: Any) -> None:
    admin = auth("admin")
    await _set_rules(client, auth)
    again = await client.put("/api/v1/pricing/stay-rules", json=RULES, headers=admin)
    assert again.status == 200
    async with client.server.app[DATABASE].acquire() as conn:
        types = [r["type"] for r in await conn.fetch(
            "SELECT type FROM events WHERE type LIKE 'PricingPolicy.%' ORDER BY position")]
    assert types == ["PricingPolicy.Started", "PricingPolicy.StayRulesSet",
                     "PricingPolicy.DurationDiscountsSet"]  # the same rules again: nothing
    rules = await (await client.get("/api/v1/pricing/rules")).json()
    assert rules["stay_rules"]["minimum_stays"] == [
        {"category": "property", "season": "peak", "nights": 7, "location": None}]
    assert rules["stay_rules"]["advance_notice_hours"] == 48
    assert rules["duration_discounts"]["property"][1] == {"min_nights": 28,
                                                          "percentage": "20"}
    bad = await client.put("/api/v1/pricing/stay-rules", json={
        "minimum_stays": [{"category": "boat", "season": "peak", "nights": 0}],
        "changeovers": [{"category": "yacht", "season": "high", "weekday": "caturday"}],
        "advance_notice_hours": -1}, headers=admin)
    assert bad.status == 422
    fields = {e["field"] for e in (await bad.json())["errors"]}
    assert {"body.minimum_stays.0.category", "body.minimum_stays.0.nights",
            "body.changeovers.0.weekday", "body.advance_notice_hours"} <= fields
    nowhere = await client.put("/api/v1/pricing/stay-rules", json={"minimum_stays": [
        {"category": "car", "season": "peak", "nights": 2, "location": "XX-XX"}]},
        headers=admin)
    assert nowhere.status == 422
    whole = await client.put("/api/v1/pricing/duration-discounts/property", json={
        "tiers": [{"min_nights": 7, "percentage": "100"}]}, headers=admin)
    assert whole.status == 422
    twice = await client.put("/api/v1/pricing/duration-discounts/property", json={
        "tiers": [{"min_nights": 7, "percentage": "5"}, {"min_nights": 7, "percentage": "6"}]},
        headers=admin)
    assert twice.status == 422
    unknown = await client.put("/api/v1/pricing/duration-discounts/boat", json=WEEKLY,
                               headers=admin)
    assert unknown.status == 404
    customer = await client.put("/api/v1/pricing/stay-rules", json=RULES,
                                headers=auth("customer"))
    assert customer.status == 403


async def test_an_items_own_discounts_replace_its_categorys(client: Any, auth: Any) -> None:
    admin = auth("admin")
    villa = await _item(client, auth, VILLA)
    await _set_rules(client, auth)
    stay = _stay(villa, _at("2027-05-03T15:00:00"), _at("2027-05-10T11:00:00"))
    assert (await (await client.post("/api/v1/quotes", json=stay)).json())[
        "duration_discount_rate"] == "0.1"
    own = await client.put(f"/api/v1/items/{villa}/duration-discounts", json={
        "tiers": [{"min_nights": 5, "percentage": "15"}]}, headers=admin)
    assert own.status == 200, await own.text()
    assert (await (await client.post("/api/v1/quotes", json=stay)).json())[
        "duration_discount_rate"] == "0.15"
    none = await client.put(f"/api/v1/items/{villa}/duration-discounts", json={"tiers": []},
                            headers=admin)
    assert none.status == 200
    assert (await (await client.post("/api/v1/quotes", json=stay)).json())[
        "duration_discount"] == 0
    back = await client.put(f"/api/v1/items/{villa}/duration-discounts", json={"tiers": None},
                            headers=admin)
    assert back.status == 200
    assert (await (await client.post("/api/v1/quotes", json=stay)).json())[
        "duration_discount_rate"] == "0.1"
