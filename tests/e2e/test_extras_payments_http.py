"""A payment after the hold expired takes the booking's extras again, or is refunded when
one of them is no longer free (as for the item)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from midas.domain.bookings import Booking
from midas.http.keys import REPOSITORY, SCHEDULER
from midas.scheduler import ManualClock
from tests.e2e.test_payments_http import NOW, _is, _refunded, _task_exists
from tests.support.fake_stripe import booking_status, deliver, intent_event, pay, wait_until


@pytest.fixture
async def client(payment_services: Any) -> Any:
    return await payment_services()


async def _villa(client: Any, auth: Any, name: str) -> str:
    answer = await client.post("/api/v1/items", headers=auth("admin"), json={
        "name": name, "category": "property", "location": "AE-DU", "rate": 500_000})
    assert answer.status == 201, await answer.text()
    return str((await answer.json())["id"])


async def _hold_with_chef(client: Any, headers: dict[str, str], villa: str) -> Any:
    start = NOW + timedelta(days=20)
    return await client.post("/api/v1/bookings", headers=headers, json={
        "item_id": villa, "start": start.isoformat(),
        "end": (start + timedelta(days=3)).isoformat(), "extras": [{"code": "chef"}]})


async def _expired_after_paying(client: Any, headers: dict[str, str], villa: str,
                                clock: ManualClock) -> tuple[dict[str, Any], str]:
    held = await _hold_with_chef(client, headers, villa)
    assert held.status == 201, await held.text()
    booking = await held.json()
    intent = (await (await pay(client, headers, booking["id"])).json())["payment_intent"]
    clock.advance(timedelta(minutes=31))
    await wait_until(lambda: _task_exists(client, f"expire_hold:{booking['id']}"))
    await client.server.app[SCHEDULER].run_due()
    assert await booking_status(client, booking["id"]) == "expired"
    return booking, intent


async def test_a_late_payment_is_refunded_when_the_chef_was_taken_meanwhile(
    client: Any, auth: Any, booking_clock: ManualClock,
) -> None:
    first, second = await _villa(client, auth, "Amber"), await _villa(client, auth, "Jade")
    late = auth("customer", uuid4())
    booking, intent = await _expired_after_paying(client, late, first, booking_clock)
    taken = await _hold_with_chef(client, auth("customer", uuid4()), second)
    assert taken.status == 201, await taken.text()  # the expiry gave the chef back
    total = booking["quote"]["total_due"]
    await deliver(client, intent_event("payment_intent.succeeded", intent, total,
                                       booking["id"]))
    await wait_until(lambda: _refunded(client, booking["id"], total))
    assert await booking_status(client, booking["id"]) == "expired"


async def test_a_late_payment_takes_the_chef_again_when_free(
    client: Any, auth: Any, booking_clock: ManualClock,
) -> None:
    first, second = await _villa(client, auth, "Amber"), await _villa(client, auth, "Jade")
    late = auth("customer", uuid4())
    booking, intent = await _expired_after_paying(client, late, first, booking_clock)
    await deliver(client, intent_event("payment_intent.succeeded", intent,
                                       booking["quote"]["total_due"], booking["id"]))
    await wait_until(lambda: _is(client, booking["id"], "confirmed"))
    refused = await _hold_with_chef(client, auth("customer", uuid4()), second)
    assert refused.status == 409  # one chef a day, and the reinstated booking has it
    assert (await refused.json())["extra"] == "chef"


async def test_reports_split_a_paid_yacht_week_into_rental_extras_and_the_apa(
    client: Any, auth: Any,
) -> None:
    from tests.e2e.test_locations_http import MONACO

    admin = auth("admin")
    assert (await client.post("/api/v1/locations", json=MONACO, headers=admin)).status == 201
    yacht = (await (await client.post("/api/v1/items", headers=admin, json={
        "name": "Lady Aurora", "category": "yacht", "location": "MC-MO",
        "rate": 100_000})).json())["id"]
    start = NOW + timedelta(days=30)
    customer = auth("customer", uuid4())
    held = await client.post("/api/v1/bookings", headers=customer, json={
        "item_id": yacht, "start": start.isoformat(),
        "end": (start + timedelta(days=7)).isoformat(),
        "extras": [{"code": "crew"}, {"code": "catering", "quantity": 8}, {"code": "apa"}]})
    assert held.status == 201, await held.text()
    booking = await held.json()
    q = booking["quote"]
    intent = (await (await pay(client, customer, booking["id"])).json())["payment_intent"]
    await deliver(client, intent_event("payment_intent.succeeded", intent, q["total_due"],
                                       booking["id"], currency="eur"))
    await wait_until(lambda: _is(client, booking["id"], "confirmed"))

    async def reported() -> dict[str, Any] | None:
        answer = await client.get("/api/v1/reports/financial", headers=admin, params={
            "from": "2026-11-01", "to": "2026-11-02", "group": "total"})
        rows = (await answer.json())["rows"]
        return rows[0] if rows else None

    async def paid() -> bool:
        row = await reported()
        return row is not None and row["gross"] > 0

    await wait_until(paid)
    row = await reported()
    assert row is not None
    assert (row["currency"], row["gross"], row["net"]) == ("EUR", q["total_due"],
                                                           q["total_due"])
    assert (row["extras"], row["pass_through"]) == (1_250_000, 5_040_000)
    assert row["revenue"] == q["total_due"] - 5_040_000  # the APA is not revenue
    assert row["rental"] == q["total_due"] - 1_250_000 - 5_040_000  # rental, insurance, tax


async def _paid_yacht_week(client: Any, auth: Any, days_ahead: int,
                           **paid_with: Any) -> tuple[dict, dict]:
    from tests.e2e.test_locations_http import MONACO

    admin = auth("admin")
    await client.post("/api/v1/locations", json=MONACO, headers=admin)  # 409 the 2nd time
    yacht = (await (await client.post("/api/v1/items", headers=admin, json={
        "name": f"Riva {days_ahead}", "category": "yacht", "location": "MC-MO",
        "rate": 100_000})).json())["id"]
    start = NOW + timedelta(days=days_ahead)
    customer = auth("customer", uuid4())
    held = await client.post("/api/v1/bookings", headers=customer, json={
        "item_id": yacht, "start": start.isoformat(),
        "end": (start + timedelta(days=7)).isoformat(),
        "extras": [{"code": "crew"}, {"code": "catering", "quantity": 8}, {"code": "apa"}]})
    assert held.status == 201, await held.text()
    booking = {**await held.json(), "_auth": customer["Authorization"]}
    intent = (await (await pay(client, customer, booking["id"])).json())["payment_intent"]
    await deliver(client, intent_event("payment_intent.succeeded", intent,
                                       booking["quote"]["total_due"], booking["id"],
                                       currency="eur", **paid_with))
    await wait_until(lambda: _is(client, booking["id"], "confirmed"))
    for step in ("check-out", "check-in"):
        moved = await client.post(f"/api/v1/bookings/{booking['id']}/{step}", headers=admin)
        assert moved.status == 200, await moved.text()
    return booking, admin


async def test_the_apa_statement_refunds_what_was_not_spent(
    client: Any, auth: Any, fake_stripe: Any,
) -> None:
    booking, admin = await _paid_yacht_week(client, auth, 30)
    path = f"/api/v1/bookings/{booking['id']}/apa-statement"
    settled = await client.post(path, json={"spent": 4_000_000}, headers=admin)
    assert settled.status == 200, await settled.text()
    assert {k: (await settled.json())[k] for k in ("collected", "spent", "refund", "top_up")} \
        == {"collected": 5_040_000, "spent": 4_000_000, "refund": 1_040_000, "top_up": 0}
    await wait_until(lambda: _refunded(client, booking["id"], 1_040_000))
    assert fake_stripe.keys("/v1/refunds") == [f"booking:{booking['id']}:refund:apa:v1"]
    again = await client.post(path, json={"spent": 1}, headers=admin)
    assert again.status == 409

    async def split() -> bool:
        answer = await client.get("/api/v1/reports/financial", headers=admin, params={
            "from": "2026-11-01", "to": "2026-11-02", "group": "total"})
        rows = (await answer.json())["rows"]
        return bool(rows) and rows[0]["refunds"] == 1_040_000

    await wait_until(split)
    row = (await (await client.get("/api/v1/reports/financial", headers=admin, params={
        "from": "2026-11-01", "to": "2026-11-02", "group": "total"})).json())["rows"][0]
    total = booking["quote"]["total_due"]
    # the refund was all APA: the revenue is untouched, the pass-through money is what
    # was spent
    assert (row["pass_through"], row["extras"]) == (4_000_000, 1_250_000)
    assert row["revenue"] == total - 5_040_000


async def test_a_monaco_yacht_week_reconciled_with_a_top_up_charged_on_the_card(
    client: Any, auth: Any, fake_stripe: Any,
) -> None:
    """A Monaco yacht week in EUR with crew, catering and APA: the quote line by line, tax
    on the right lines, the APA outside revenue, and the overspend collected as a top-up."""
    booking, admin = await _paid_yacht_week(client, auth, 40, payment_method="pm_card_visa")
    q = booking["quote"]
    assert (q["currency"], q["rental"], q["insurance"]) == ("EUR", 16_800_000, 2_520_000)
    assert [(e["code"], e["amount"], e["tax"]) for e in q["extras"]] == [
        ("crew", 1_050_000, "taxed"), ("catering", 200_000, "taxed"),
        ("apa", 5_040_000, "pass_through")]
    assert q["tax"] == (16_800_000 + 2_520_000 + 1_250_000) * 20 // 100  # not on the APA
    total = q["total_due"]
    settled = await client.post(f"/api/v1/bookings/{booking['id']}/apa-statement",
                                json={"spent": 5_500_000}, headers=admin)
    assert settled.status == 200, await settled.text()
    body = await settled.json()
    assert (body["refund"], body["top_up"]) == (0, 460_000)
    assert fake_stripe.keys("/v1/refunds") == []

    # The process asks for the top-up under its own key and charges the card that paid.
    key = f"booking:{booking['id']}:apa-topup:v1"

    async def charged() -> bool:
        return any(k and k.endswith("apa-topup:confirm:pm_card_visa:v1")
                   for k in fake_stripe.keys("/confirm"))

    await wait_until(charged)
    intent = next(i for i in fake_stripe.intents.values()
                  if i["metadata"].get("kind") == "apa_top_up")
    assert (intent["amount"], intent["currency"]) == (460_000, "eur")
    assert fake_stripe.keys("/v1/payment_intents").count(key) == 1
    assert intent["payment_method"] == "pm_card_visa" and intent["status"] == "succeeded"
    await deliver(client, intent_event("payment_intent.succeeded", intent["id"], 460_000,
                                       booking["id"], currency="eur",
                                       payment_method="pm_card_visa"))

    async def statement() -> dict[str, Any] | None:
        answer = await client.get(f"/api/v1/bookings/{booking['id']}", headers=admin)
        return (await answer.json()).get("apa") if answer.status == 200 else None

    async def paid() -> bool:
        return ((await statement()) or {}).get("top_up_paid") == 460_000

    await wait_until(paid)
    assert await statement() == {"collected": 5_040_000, "spent": 5_500_000, "refund": 0,
                                 "top_up": 460_000, "top_up_paid": 460_000}
    view = await (await client.get(f"/api/v1/bookings/{booking['id']}/payments",
                                   headers=admin)).json()
    asked_entry = next(p for p in view["payments"] if p["type"] == "Payment.Asked")
    assert (asked_entry["amount"], asked_entry["detail"]["purpose"]) == (460_000,
                                                                         "apa_top_up")
    top_up = [p for p in view["payments"] if p["type"] == "Payment.Succeeded"
              and p["reference"] == intent["id"]]
    assert [p["detail"]["parts"] for p in top_up] == [{"extras": 0, "pass_through": 460_000}]
    assert (view["balance"]["amount_due"], view["balance"]["paid"],
            view["balance"]["outstanding"]) == (total + 460_000, total + 460_000, 0)

    async def reported() -> dict[str, Any]:
        answer = await client.get("/api/v1/reports/financial", headers=admin, params={
            "from": "2026-11-01", "to": "2026-11-02", "group": "total"})
        return (await answer.json())["rows"][0]

    async def counted() -> bool:
        return (await reported())["gross"] == total + 460_000

    await wait_until(counted)
    row = await reported()
    # The top-up is pass-through money: the revenue is what it was.
    assert (row["pass_through"], row["extras"]) == (5_500_000, 1_250_000)
    assert row["revenue"] == total - 5_040_000
    again = await client.post(f"/api/v1/bookings/{booking['id']}/apa-top-up",
                              headers=admin)
    assert again.status == 409  # nothing owed any more


async def test_a_top_up_the_card_on_file_cannot_pay_is_paid_by_the_customer(
    client: Any, auth: Any, fake_stripe: Any,
) -> None:
    booking, admin = await _paid_yacht_week(client, auth, 50)  # no card on file
    settled = await client.post(f"/api/v1/bookings/{booking['id']}/apa-statement",
                                json={"spent": 5_100_000}, headers=admin)
    assert (await settled.json())["top_up"] == 60_000
    key = f"booking:{booking['id']}:apa-topup:v1"

    async def asked() -> bool:
        return key in fake_stripe.keys("/v1/payment_intents")

    await wait_until(asked)
    assert not [c for c in fake_stripe.calls if c.path.endswith("/confirm")]
    customer = {"Authorization": booking["_auth"]}
    answer = await client.post(f"/api/v1/bookings/{booking['id']}/apa-top-up",
                               headers=customer)
    assert answer.status == 200, await answer.text()
    payment = await answer.json()
    intent = fake_stripe.intents[payment["payment_intent"]]
    assert (payment["amount"], payment["currency"]) == (60_000, "EUR")
    assert payment["client_secret"] == intent["client_secret"]
    assert fake_stripe.keys("/v1/payment_intents").count(key) == 2  # the same intent
    stranger = await client.post(f"/api/v1/bookings/{booking['id']}/apa-top-up",
                                 headers=auth("customer"))
    assert stranger.status == 404
    await deliver(client, intent_event("payment_intent.succeeded", intent["id"], 60_000,
                                       booking["id"], currency="eur"))

    async def recorded() -> bool:
        b = await client.server.app[REPOSITORY].get(UUID(booking["id"]), cls=Booking)
        return b.apa is not None and b.apa.get("top_up_paid") == 60_000

    await wait_until(recorded)


async def test_an_overspent_apa_is_owed_and_nothing_is_refunded(
    client: Any, auth: Any, fake_stripe: Any,
) -> None:
    booking, admin = await _paid_yacht_week(client, auth, 40)
    settled = await client.post(f"/api/v1/bookings/{booking['id']}/apa-statement",
                                json={"spent": 5_500_000}, headers=admin)
    assert settled.status == 200, await settled.text()
    body = await settled.json()
    assert (body["refund"], body["top_up"]) == (0, 460_000)
    assert fake_stripe.keys("/v1/refunds") == []
    customer = await client.post(f"/api/v1/bookings/{booking['id']}/apa-statement",
                                 json={"spent": 1}, headers=auth("customer"))
    assert customer.status == 403
    car = (await (await client.post("/api/v1/items", headers=admin, json={
        "name": "Car", "category": "car", "location": "US-CA", "rate": 100_000})).json())["id"]
    start = NOW + timedelta(days=5)
    plain = await (await client.post("/api/v1/bookings", headers=auth("customer"), json={
        "item_id": car, "start": start.isoformat(),
        "end": (start + timedelta(days=1)).isoformat()})).json()
    no_apa = await client.post(f"/api/v1/bookings/{plain['id']}/apa-statement",
                               json={"spent": 1}, headers=admin)
    assert no_apa.status == 422
