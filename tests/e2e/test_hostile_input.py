"""Hostile input over HTTP: what PostgreSQL cannot store, control characters and integers
beyond their columns get a 422 naming the field (never a 500), and never reach the log
where they would stop a read model."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from midas.limits import BIGINT_MAX, MAX_AMOUNT, MAX_RATE
from tests.e2e.auth_support import CONSENT, PASSWORD, bearer, register, signed_in

ITEM = {"name": "Riva Aquarama", "category": "yacht", "location": "AE-DU", "rate": 150_000}


async def _problem(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    return await response.json()


async def _refused(response: Any, field: str, status: int = 422) -> dict[str, Any]:
    problem = await _problem(response, status)
    assert field in [e["field"] for e in problem["errors"]], problem
    return problem


async def _search(client: Any, headers: dict[str, str], q: str, position: int) -> list[str]:
    found = await client.get("/api/v1/accounts", headers=headers,
                             params={"q": q, "min_position": str(position)})
    assert found.status == 200, await found.text()
    return [a["name"] for a in (await found.json())["accounts"]]


async def test_registration_with_nul_in_the_name_is_refused_and_accounts_keep_running(
    app_client: Any, auth: Any,
) -> None:
    for name in ("Ada\x00", "Ada\x1b[31m", "Ada\nLovelace", "\x7f", "Ada\u0085"):
        response = await app_client.post("/api/v1/auth/register", json={
            "email": "nul@example.com", "name": name, "password": PASSWORD,
            "consent": CONSENT})
        problem = await _refused(response, "body.name")
        assert name not in str(problem)  # the value is never echoed
    accepted = await register(app_client, "ada@example.com", name="Ada Lovelace-Ω 🛥")
    names = await _search(app_client, auth("concierge"), "Lovelace", accepted["position"])
    assert names == ["Ada Lovelace-Ω 🛥"]


async def test_login_with_nul_in_the_email_is_a_422(app_client: Any) -> None:
    response = await app_client.post("/api/v1/auth/login", json={
        "email": "ada\x00@example.com", "password": PASSWORD})
    await _refused(response, "body.email")
    nul_password = await app_client.post("/api/v1/auth/login", json={
        "email": "ada@example.com", "password": "pass\x00word"})
    await _refused(nul_password, "body.password")


async def test_profile_name_and_staff_note_with_nul_are_refused_profiles_keep_running(
    app_client: Any, auth: Any,
) -> None:
    ada = await register(app_client)
    tokens = await signed_in(app_client)
    own = f"/api/v1/accounts/{ada['id']}/profile"
    await _refused(await app_client.put(own, json={"name": "A\x00"}, headers=bearer(tokens)),
                   "body.name")
    staff = auth("concierge")
    note = f"/api/v1/customers/{ada['id']}/notes"
    await _refused(await app_client.post(note, json={"text": "x\x00y"}, headers=staff),
                   "body.text")
    await _refused(await app_client.post(note, json={"text": "bell\x07"}, headers=staff),
                   "body.text")
    # Free text keeps its lines and tabs.
    kept = await app_client.post(note, json={"text": "Riva\r\n\tchampagne"}, headers=staff)
    assert kept.status == 201, await kept.text()
    renamed = await app_client.put(own, json={"name": "Ada King"}, headers=bearer(tokens))
    assert renamed.status == 200, await renamed.text()
    view = await app_client.get(f"/api/v1/customers/{ada['id']}", headers=staff, params={
        "min_position": str((await renamed.json())["position"])})
    assert view.status == 200, await view.text()
    body = await view.json()
    assert body["profile"]["name"] == "Ada King"
    assert [n["text"] for n in body["notes"]] == ["Riva\r\n\tchampagne"]


async def test_item_name_and_rate_beyond_their_bounds_are_refused(
    app_client: Any, auth: Any,
) -> None:
    admin = auth("admin")
    await _refused(await app_client.post("/api/v1/items", headers=admin,
                                         json={**ITEM, "name": "Riva\x00"}), "body.name")
    for rate in (2**64, 2**63, BIGINT_MAX, MAX_RATE + 1, 0):
        await _refused(await app_client.post("/api/v1/items", headers=admin,
                                             json={**ITEM, "rate": rate}), "body.rate")
    keyed = await _problem(await app_client.post("/api/v1/items", headers=admin, json={
        **ITEM, "attributes": {"cabins\x00": 3}}))
    assert [e["field"].startswith("body.attributes.") for e in keyed["errors"]] == [True]
    await _refused(await app_client.post("/api/v1/items", headers=admin, json={
        **ITEM, "attributes": {"hull": "teak\x00"}}), "body.attributes.hull.text")
    # An integer beyond 64 bits is no integer attribute: it is kept as a decimal string.
    created = await app_client.post("/api/v1/items", headers=admin, json={
        **ITEM, "rate": MAX_RATE, "attributes": {"cabins": 3, "grams": 2**64}})
    assert created.status == 201, await created.text()
    item = await created.json()
    rate = f"/api/v1/items/{item['id']}/rate"
    await _refused(await app_client.put(rate, json={"rate": MAX_RATE + 1}, headers=admin),
                   "body.rate")
    # A bulk raise past the bound is refused per item, and the item keeps its rate.
    bulk = await app_client.post("/api/v1/items/bulk/rates", headers=admin, json={
        "item_ids": [item["id"]], "percentage": "10"})
    assert bulk.status == 200, await bulk.text()
    assert [r["outcome"] for r in (await bulk.json())["results"]] == ["refused"]
    other = await app_client.post("/api/v1/items", headers=admin, json=ITEM)
    position = (await other.json())["position"]
    listed = await app_client.get(f"/api/v1/items/{item['id']}",
                                  params={"min_position": str(position)})
    assert listed.status == 200, await listed.text()
    view = await listed.json()
    assert (view["rate"], view["attributes"]) == (MAX_RATE, {"cabins": 3, "grams": str(2**64)})


async def test_error_reports_with_nul_or_amounts_beyond_bigint_are_422(app_client: Any) -> None:
    report = {"category": "booking", "message": "Checkout failed"}
    await _refused(await app_client.post("/api/v1/errors", json={
        **report, "message": "x\x00"}), "body.message")
    for amount in (2**63, 2**64, MAX_AMOUNT + 1):
        await _refused(await app_client.post("/api/v1/errors", json={
            **report, "amount_at_risk": amount}), "body.amount_at_risk")
    await _refused(await app_client.post("/api/v1/errors", json={
        **report, "context": {"step": "pay\x00"}}), "body.context")
    await _refused(await app_client.post("/api/v1/errors", json={
        **report, "context": {"cart": [{"total": 2**64}]}}), "body.context")
    await _refused(await app_client.post("/api/v1/errors", json={
        **report, "app": "ios\x00"}), "body.app")
    accepted = await app_client.post("/api/v1/errors", json={
        **report, "amount_at_risk": MAX_AMOUNT, "context": {"trace": "a\n\tb", "n": -2**63}})
    assert accepted.status == 201, await accepted.text()


async def test_search_terms_and_filters_beyond_bounds_are_422(app_client: Any, auth: Any) -> None:
    staff = auth("concierge")
    await _refused(await app_client.get("/api/v1/accounts", params={"q": "a\x00"},
                                        headers=staff), "query.q")
    await _refused(await app_client.get("/api/v1/customers", params={"q": "a\x00"},
                                        headers=staff), "query.q")
    for spend in (2**63, 2**64, MAX_AMOUNT + 1):
        await _refused(await app_client.get("/api/v1/customers", headers=staff,
                                            params={"min_spend": str(spend)}),
                       "query.min_spend")
        await _refused(await app_client.get("/api/v1/customers", headers=staff,
                                            params={"max_spend": str(spend)}),
                       "query.max_spend")
    at_bound = await app_client.get("/api/v1/customers", headers=staff,
                                    params={"min_spend": str(MAX_AMOUNT)})
    assert at_bound.status == 200, await at_bound.text()
    await _refused(await app_client.get("/api/v1/accounts", headers=staff,
                                        params={"min_position": str(2**63)}),
                   "query.min_position")


async def test_segment_message_with_nul_is_refused(app_client: Any, auth: Any) -> None:
    admin = auth("admin")
    path = "/api/v1/customers/segments/prospect/messages"
    await _refused(await app_client.post(path, headers=admin, json={
        "subject": "Hello", "body": "x\x00"}), "body.body")
    await _refused(await app_client.post(path, headers=admin, json={
        "subject": "Hello\r\nBcc: everyone@example.com", "body": "x"}), "body.subject")
    sent = await app_client.post(path, headers=admin, json={
        "subject": "Hello", "body": "Dear guest,\n\n\tenjoy.\r\n"})
    assert sent.status == 202, await sent.text()


async def test_outbox_retry_with_a_non_ascii_digit_id_is_404(app_client: Any, auth: Any) -> None:
    admin = auth("admin")
    for raw in ("%C2%B9", "%D9%A3", "1%C2%B9", str(2**63), "0"):
        response = await app_client.post(
            f"/api/v1/admin/notifications/outbox/{raw}/retry", headers=admin)
        await _problem(response, 404)
    missing = await app_client.post(
        f"/api/v1/admin/notifications/outbox/{BIGINT_MAX}/retry", headers=admin)
    await _problem(missing, 404)


async def test_ids_in_paths_are_404_whatever_they_hold(app_client: Any, auth: Any) -> None:
    admin = auth("admin")
    for raw in ("%00", "%ED%A0%80", "%C2%B9", "x" * 300):
        response = await app_client.get(f"/api/v1/items/{raw}")
        await _problem(response, 404)
        response = await app_client.get(f"/api/v1/accounts/{raw}", headers=admin)
        await _problem(response, 404)


_FEED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Owner//EN\r\nBEGIN:VEVENT\r\n"
    "UID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261110T100000Z\r\n"
    "DTEND:20261110T140000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def test_a_feed_holding_nul_is_synced_without_it_and_a_failing_poll_is_4xx(
    booking_services: Any, auth: Any, aiohttp_server: Any,
) -> None:
    feed = {"body": _FEED.format(uid="owner\x00-1", summary="Owner\x00 \x1b drives"),
            "status": 200}

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=feed["body"].encode(), status=feed["status"],
                            content_type="text/calendar")

    app = web.Application()
    app.router.add_get("/owner.ics", serve)
    server = await aiohttp_server(app)
    client = await booking_services(calendar_poller_enabled=False,
                                    outbound_allowed_hosts=["127.0.0.1"])
    admin = auth("admin")
    item = await (await client.post("/api/v1/items", json=ITEM, headers=admin)).json()
    # A booking in the way: the refused block's summary is recorded with the conflict.
    customer = auth("customer")
    booked = await client.post("/api/v1/bookings", headers=customer, json={
        "item_id": item["id"], "start": "2026-11-10T11:00:00Z", "end": "2026-11-10T12:00:00Z"})
    assert booked.status == 201, await booked.text()
    sub = await (await client.post(
        f"/api/v1/calendar/items/{item['id']}/subscriptions", headers=admin,
        json={"name": "owner", "url": str(server.make_url("/owner.ics"))})).json()
    poll = f"/api/v1/calendar/subscriptions/{sub['id']}/poll"
    synced = await client.post(poll, headers=admin)
    assert synced.status == 200, await synced.text()
    assert (await synced.json())["refused"] == 1
    conflicts = await client.get("/api/v1/calendar/conflicts", headers=admin)
    assert [c["summary"] for c in (await conflicts.json())["conflicts"]] == ["Owner  drives"]

    feed["status"] = 500
    failed = await client.post(poll, headers=admin)
    problem = await _problem(failed, 422)
    assert problem["error"] == "http"
    feed.update(status=200, body="not a calendar")
    assert (await _problem(await client.post(poll, headers=admin), 422))["error"] == "malformed"


async def test_the_stores_refusal_is_a_422_naming_where(aiohttp_client: Any) -> None:
    """A value a model let through is still refused by the store: 422, nothing written."""
    from midas.eventstore.codec import check_plain
    from midas.http.middlewares import problem_middleware

    async def handler(request: web.Request) -> web.Response:
        check_plain({"changes": {"name": "Ada\x00"}})
        raise AssertionError("refused above")

    app = web.Application(middlewares=[problem_middleware()])
    app.router.add_post("/thing", handler)
    client = await aiohttp_client(app)
    problem = await _problem(await client.post("/thing"), 422)
    assert problem["errors"] == [{"field": "$.changes.name", "type": "unstorable",
                                  "message": "NUL (U+0000) in a string"}]
