"""The personal data export (GDPR articles 15 and 20): everything held about a person, as
JSON, for them or a super admin; nothing personal left in it after crypto-shredding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from midas.http.keys import DATABASE, GATE
from tests.e2e.auth_support import bearer, register, signed_in, verify_email

ADA = {"email": "Ada.Exported@example.com", "name": "Ada Exportington",
       "phone": "+44 20 7946 0321"}
ADA_LATER = {"name": "Ada Q Exportington", "phone": "+44 20 7946 0777"}
NOTE = "Allergic to lilies; call on +44 20 7946 0321 only"
PERSONAL = [ADA["email"], "ada.exported", "Exportington", "7946 0321", "7946 0777",
            "lilies"]
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
MARKETING = {"version": "marketing-2026-01", "accepted": True}
READ_MODELS = ("accounts", "profiles", "bookings", "payments", "notifications")


async def _head(client: Any) -> int:
    async with client.server.app[DATABASE].acquire() as conn:
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    await client.server.app[GATE].wait(READ_MODELS, head)
    return head


async def _seed(client: Any, auth: Any) -> tuple[UUID, dict[str, str], str]:
    """Ada with a profile change, a booking, a staff note, a marketing email, an error
    report and a calendar feed: something in every section of the export."""
    ada = UUID((await register(client, **ADA, marketing=MARKETING))["id"])
    tokens = await signed_in(client, ADA["email"])
    await verify_email(client, tokens)  # she holds a booking below
    mine = bearer(tokens)
    changed = await client.put(f"/api/v1/accounts/{ada}/profile", json=ADA_LATER,
                               headers=mine)
    assert changed.status == 200, await changed.text()
    item = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    held = await client.post("/api/v1/bookings", headers=mine, json={
        "item_id": (await item.json())["id"], "start": start.isoformat(),
        "end": (start + timedelta(days=2)).isoformat(), "service_level": "standard"})
    assert held.status == 201, await held.text()
    note = await client.post(f"/api/v1/customers/{ada}/notes", headers=auth("concierge"),
                             json={"text": NOTE})
    assert note.status == 201, await note.text()
    reported = await client.post("/api/v1/errors", headers=mine, json={
        "category": "user_experience", "message": f"phone {ADA['phone']} was refused"})
    assert reported.status == 201, await reported.text()
    feed = await client.post(f"/api/v1/calendar/feeds/customers/{ada}/token", headers=mine)
    assert feed.status in (200, 201), await feed.text()
    await _head(client)
    sent = await client.post("/api/v1/customers/segments/prospect/messages",
                             headers=auth("admin"), json={"subject": "Hi", "body": "Hello."})
    assert sent.status == 202 and (await sent.json())["queued"] == 1
    return ada, mine, (await held.json())["id"]


async def _export(client: Any, account: UUID, headers: dict[str, str]) -> Any:
    return await client.get(f"/api/v1/accounts/{account}/export",
                            params={"min_position": await _head(client)}, headers=headers)


async def test_the_export_holds_everything_about_the_person_and_no_secret(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    ada, mine, booking = await _seed(client, auth)
    response = await _export(client, ada, mine)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"].startswith("no-store")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="midas-personal-data-{ada}.json"')
    text = await response.text()
    data = await response.json()

    assert (data["format"], data["format_version"]) == ("midas.personal-data-export", 1)
    assert data["account_id"] == str(ada) and data["generated_at"]
    account = data["account"]
    assert (account["email"], account["name"], account["phone"]) == (
        ADA["email"], ADA_LATER["name"], ADA_LATER["phone"])
    assert account["role"] == "customer" and account["status"] == "active"
    assert data["consents"]["terms"]["version"] == "2026-01"
    assert data["consents"]["marketing"]["given"] is True
    assert data["consents"]["marketing"]["version"] == MARKETING["version"]

    # The history: the account's own events, personal fields decrypted, no staff ids.
    history = data["history"]
    types = [h["type"] for h in history]
    assert types[:2] == ["Account.Registered", "Account.MarketingConsentGiven"]
    assert "Account.ProfileChanged" in types and "Account.NoteAdded" in types
    assert "Account.EmailVerified" in types
    registered = history[0]["data"]
    assert (registered["email"], registered["name"], registered["phone"]) == (
        ADA["email"], ADA["name"], ADA["phone"])
    changed = next(h for h in history if h["type"] == "Account.ProfileChanged")
    assert changed["data"]["changes"]["name"] == ADA_LATER["name"]
    assert changed["actor"] == "self"
    noted = next(h for h in history if h["type"] == "Account.NoteAdded")
    assert noted["actor"] == "concierge" and "author_id" not in noted["data"]
    assert noted["data"]["text"] == NOTE

    assert [n["text"] for n in data["notes"]] == [NOTE]
    assert set(data["notes"][0]) == {"note_id", "text", "recorded_at"}
    assert [b["booking_id"] for b in data["bookings"]] == [booking]
    assert data["profile"]["customer_id"] == str(ada)
    assert "prospect" in data["profile"]["segments"]  # profiling is shown (art. 15(1)(h))
    templates = sorted(e["template"] for e in data["emails"])
    assert templates == ["booking_held", "segment_message", "verify_email", "welcome"]
    assert [r["message"] for r in data["error_reports"]] == [
        f"phone {ADA['phone']} was refused"]
    assert data["calendar_feed"]["created_at"]
    sign_in = data["sign_in"]
    assert sign_in["password_set"] is True and sign_in["google_linked"] is False
    assert len(sign_in["sessions"]) >= 1
    assert {"payments", "loyalty_points"} <= set(data)

    # No secret and nothing sealed: no hashes, tokens, envelopes, staff ids.
    lowered = text.lower()
    for secret in ("pii:v1:", "$2b$", "password_hash", "token_hash", "refresh_token",
                   mine["Authorization"].split()[1], "tracking_id", "author_id"):
        assert secret.lower() not in lowered, secret


async def test_who_may_export_whose_data(booking_client: Any, auth: Any) -> None:
    client = booking_client
    ada = UUID((await register(client, **ADA))["id"])
    bob = UUID((await register(client, "bob@example.com", name="Bob Marley"))["id"])
    bob_tokens = bearer(await signed_in(client, "bob@example.com"))
    # A customer cannot export another's data: it does not exist for them (404).
    other = await _export(client, ada, bob_tokens)
    assert other.status == 404
    assert "Exportington" not in await other.text()
    assert (await _export(client, bob, bob_tokens)).status == 200
    # Staff produce it on request: super admins; other staff roles may not.
    for role in ("concierge", "admin"):
        assert (await _export(client, ada, auth(role))).status == 403, role
    done = await _export(client, ada, auth("super_admin"))
    assert done.status == 200 and (await done.json())["account"]["name"] == ADA["name"]
    assert (await _export(client, uuid4(), auth("super_admin"))).status == 404
    assert (await client.get(f"/api/v1/accounts/{ada}/export")).status == 401


async def test_after_erasure_the_export_holds_nothing_personal(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    ada, _, booking = await _seed(client, auth)
    super_admin = auth("super_admin")
    before = await _export(client, ada, super_admin)
    text = (await before.text()).lower()
    for value in PERSONAL:  # the check below can fail: every value is there before
        assert value.lower() in text, value

    erased = await client.post(f"/api/v1/accounts/{ada}/erase", headers=super_admin)
    assert erased.status == 200, await erased.text()
    after = await _export(client, ada, super_admin)
    assert after.status == 200, await after.text()
    text = (await after.text()).lower()
    for value in PERSONAL:
        assert value.lower() not in text, f"{value!r} is still in the export"
    data = await after.json()
    assert data["account"]["status"] == "erased"
    assert data["account"]["email"] == data["account"]["name"] == "[erased]"
    # What is not personal stays: the history's shape, the booking, the consents' dates.
    assert [b["booking_id"] for b in data["bookings"]] == [booking]
    assert data["history"][-1]["type"] == "Account.Erased"
    assert data["consents"]["terms"]["version"] == "2026-01"
