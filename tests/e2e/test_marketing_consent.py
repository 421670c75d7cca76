"""Marketing consent: segment messages reach only consenting customers; every marketing
email carries a one-click unsubscribe (RFC 8058) that works without signing in; service
emails carry none and are always sent. Real SMTP (aiosmtpd), real HTTP, real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import pytest

from midas.config import Settings
from midas.http.keys import DATABASE, GATE, NOTIFICATIONS
from tests.e2e.auth_support import bearer, register, signed_in, verify_email
from tests.support.smtp import Inbox, parts, smtp_server

MARKETING = {"version": "marketing-2026-01", "accepted": True}
BASE = "https://midas.test"
LINK = re.compile(r"^<(https://midas\.test/api/v1/notifications/unsubscribe/([A-Za-z0-9_-]+))>,"
                  r" <mailto:unsubscribe@midas\.test\?subject=unsubscribe%20([A-Za-z0-9_-]+)>$")
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def inbox_and_provider() -> Any:
    with smtp_server() as pair:
        yield pair


@pytest.fixture
def inbox(inbox_and_provider: Any) -> Inbox:
    return inbox_and_provider[0]


@pytest.fixture
def settings(settings: Settings, inbox_and_provider: Any) -> Settings:
    return settings.model_copy(update={
        "smtp_providers": [inbox_and_provider[1]], "email_delivery_enabled": False,
        "public_base_url": BASE, "unsubscribe_mailto": "unsubscribe@midas.test"})


async def _customer(client: Any, email: str, name: str, **extra: Any) -> UUID:
    return UUID((await register(client, email, name=name, **extra))["id"])


async def _caught_up(client: Any, *names: str) -> None:
    app = client.server.app
    async with app[DATABASE].acquire() as conn:
        head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
    await app[GATE].wait(names or ("profiles", "accounts", "notifications"), head)


async def _settle(client: Any) -> Any:
    await _caught_up(client, "notifications")
    return await client.server.app[NOTIFICATIONS].run_until_idle()


async def _message(client: Any, auth: Any, segment: str = "prospect") -> dict[str, Any]:
    await _caught_up(client)
    response = await client.post(f"/api/v1/customers/segments/{segment}/messages",
                                 headers=auth("admin"),
                                 json={"subject": "A private viewing", "body": "Join us."})
    assert response.status == 202, await response.text()
    return await response.json()


async def _marketing(client: Any, account: UUID, headers: dict[str, str]) -> dict[str, Any]:
    await _caught_up(client, "accounts")
    response = await client.get(f"/api/v1/accounts/{account}/consents", headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["marketing"]


async def _outbox(client: Any, template: str) -> list[Any]:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetch("SELECT account_id, status, last_error FROM notif_outbox"
                                " WHERE template = $1 ORDER BY id", template)


def _link(message: EmailMessage) -> tuple[str, str]:
    match = LINK.match(str(message["List-Unsubscribe"]))
    assert match, message["List-Unsubscribe"]
    assert match.group(2) == match.group(3)
    return match.group(1), match.group(2)


def _raw_headers(inbox: Inbox, message: EmailMessage) -> str:
    """The header block exactly as the SMTP server received it."""
    raw = inbox.raw[next(i for i, m in enumerate(inbox.messages) if m is message)]
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


async def test_segment_messages_go_only_to_customers_who_consent_to_marketing(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    await _customer(client, "bob@example.com", "Bob Marley")  # said nothing
    nobody = await _message(client, auth)
    assert nobody["queued"] == 0 and nobody["without_consent"] == 1
    ada = await _customer(client, "ada@example.com", "Ada Lovelace", marketing=MARKETING)
    await _customer(client, "cleo@example.com", "Cleo Patra",
                    marketing={**MARKETING, "accepted": False})  # declined
    dan = await _customer(client, "dan@example.com", "Dan Brown", marketing=MARKETING)
    withdrawn = await client.delete(f"/api/v1/accounts/{dan}/consents/marketing",
                                    headers=bearer(await signed_in(client, "dan@example.com")))
    assert withdrawn.status == 200, await withdrawn.text()

    sent = await _message(client, auth)
    assert (sent["queued"], sent["without_consent"]) == (1, 3)
    assert [r["account_id"] for r in await _outbox(client, "segment_message")] == [ada]


@pytest.mark.parametrize("version", ["", "v\u0000", "v\n1", "v\u00e9", "x" * 41])
async def test_a_malformed_marketing_version_is_refused(booking_client: Any,
                                                        version: str) -> None:
    response = await booking_client.post("/api/v1/auth/register", json={
        "email": "ada@example.com", "name": "Ada", "password": "Correct-Horse-42",
        "consent": {"version": "2026-01", "accepted": True},
        "marketing": {"version": version, "accepted": True}})
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == ["body.marketing.version"]
    ada = await _customer(booking_client, "ada@example.com", "Ada")
    given = await booking_client.post(
        f"/api/v1/accounts/{ada}/consents/marketing", json={"version": version,
                                                             "accepted": True},
        headers=bearer(await signed_in(booking_client, "ada@example.com")))
    assert given.status == 422, await given.text()
    assert [e["field"] for e in (await given.json())["errors"]] == ["body.version"]


async def test_one_click_unsubscribe_works_anonymously_and_stops_later_marketing_only(
    booking_client: Any, auth: Any, inbox: Inbox
) -> None:
    client = booking_client
    ada = await _customer(client, "ada@example.com", "Ada Lovelace", marketing=MARKETING)
    bob = await _customer(client, "bob@example.com", "Bob Marley", marketing=MARKETING)
    ada_tokens = await signed_in(client, "ada@example.com")
    await verify_email(client, ada_tokens)  # she holds a booking below
    assert (await _marketing(client, ada, bearer(ada_tokens)))["given"] is True
    await _message(client, auth)
    await _settle(client)
    await inbox.wait_for(4)  # two welcomes, two marketing emails

    # The marketing email carries both headers (RFC 8058); the service email neither.
    [ada_mail] = [m for m in inbox.by_template("segment_message")
                  if m["To"] == "ada@example.com"]
    url, token = _link(ada_mail)
    assert ada_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire: literal URIs (no RFC 2047 encoded words), folded only between them.
    wire = _raw_headers(inbox, ada_mail)
    assert f"\r\nList-Unsubscribe: <{url}>,\r\n <mailto:unsubscribe@midas.test" in wire
    assert "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in wire + "\r\n"
    assert "=?" not in wire
    assert url in parts(ada_mail)["text/plain"] and url in parts(ada_mail)["text/html"]
    assert str(ada) not in token and ada.hex not in token
    for welcome in inbox.by_template("welcome"):
        assert welcome["List-Unsubscribe"] is None
        assert welcome["List-Unsubscribe-Post"] is None
        assert "List-Unsubscribe" not in _raw_headers(inbox, welcome)
    path = url.removeprefix(BASE)

    # A GET (a mail scanner, a browser) only shows a confirmation page: nothing changes.
    page = await client.get(path)
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert 'method="post"' in html and "Ada" not in html and "ada@" not in html
    assert (await _marketing(client, ada, bearer(ada_tokens)))["given"] is True

    # A tampered token, or garbage, changes nothing and tells nothing.
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (tampered, "nonsense", str(ada)):
        refused = await client.post(path.replace(token, bad), data="List-Unsubscribe=One-Click",
                                    headers=ONE_CLICK)
        assert refused.status == 404, bad
    assert (await _marketing(client, ada, bearer(ada_tokens)))["given"] is True

    # The one-click POST, with no credentials at all, as a mailbox provider sends it.
    done = await client.post(path, data="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert done.status == 200, await done.text()
    assert "Ada" not in await done.text() and "ada@" not in await done.text()
    marketing = await _marketing(client, ada, bearer(ada_tokens))
    assert (marketing["given"], marketing["withdrawn_via"]) == (False, "unsubscribe_link")
    async with client.server.app[DATABASE].acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", ada)
    again = await client.post(path, data="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status == 200  # idempotent: the same answer, nothing appended
    async with client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = $1",
                                   ada) == before
    # Ada's link unsubscribed Ada only.
    assert (await _marketing(client, bob, auth("concierge")))["given"] is True

    # Later marketing skips Ada; Bob still gets it.
    later = await _message(client, auth)
    assert (later["queued"], later["without_consent"]) == (1, 1)
    await _settle(client)
    await inbox.wait_for(5)
    assert [m["To"] for m in inbox.by_template("segment_message")].count(
        "ada@example.com") == 1

    # Service email is still sent to Ada after the unsubscribe, without the headers.
    item = await client.post("/api/v1/items", json=CAR, headers=auth("admin"))
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    held = await client.post("/api/v1/bookings", headers=bearer(ada_tokens), json={
        "item_id": (await item.json())["id"], "start": start.isoformat(),
        "end": (start + timedelta(days=2)).isoformat(), "service_level": "standard"})
    assert held.status == 201, await held.text()
    await _settle(client)
    await inbox.wait_for(6)
    [service] = inbox.by_template("booking_held")
    assert service["To"] == "ada@example.com"
    assert service["List-Unsubscribe"] is None and service["List-Unsubscribe-Post"] is None
    assert "List-Unsubscribe" not in _raw_headers(inbox, service)


async def test_marketing_queued_before_a_withdrawal_is_not_sent(
    booking_client: Any, auth: Any, inbox: Inbox
) -> None:
    client = booking_client
    ada = await _customer(client, "ada@example.com", "Ada Lovelace", marketing=MARKETING)
    assert (await _message(client, auth))["queued"] == 1
    withdrawn = await client.delete(f"/api/v1/accounts/{ada}/consents/marketing",
                                    headers=bearer(await signed_in(client, "ada@example.com")))
    assert withdrawn.status == 200, await withdrawn.text()
    await _settle(client)
    await inbox.wait_for(2)
    assert sorted(inbox.templates()) == ["verify_email", "welcome"]
    [row] = await _outbox(client, "segment_message")
    assert (row["status"], row["last_error"]) == ("skipped", "no marketing consent")


async def test_consents_can_be_seen_given_and_withdrawn(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    ada = await _customer(client, "ada@example.com", "Ada Lovelace")
    bob = await _customer(client, "bob@example.com", "Bob Marley")
    await _caught_up(client, "accounts")
    mine = bearer(await signed_in(client, "ada@example.com"))
    seen = await client.get(f"/api/v1/accounts/{ada}/consents", headers=mine)
    assert seen.status == 200 and seen.headers["Cache-Control"].startswith("no-store")
    view = await seen.json()
    assert view["terms"]["version"] == "2026-01" and view["terms"]["given_at"]
    assert view["terms"]["withdrawable"] is False
    assert view["marketing"] == {"given": False, "version": None, "given_at": None,
                                 "withdrawn_at": None, "withdrawn_via": None}

    given = await client.post(f"/api/v1/accounts/{ada}/consents/marketing", headers=mine,
                              json={"version": "marketing-2026-01", "accepted": True})
    assert given.status == 200, await given.text()
    assert (await given.json())["changed"] is True
    marketing = await _marketing(client, ada, mine)
    assert (marketing["given"], marketing["version"]) == (True, "marketing-2026-01")
    assert marketing["given_at"] is not None and marketing["withdrawn_at"] is None
    same = await client.post(f"/api/v1/accounts/{ada}/consents/marketing", headers=mine,
                             json={"version": "marketing-2026-01", "accepted": True})
    assert (await same.json())["changed"] is False
    refused = await client.post(f"/api/v1/accounts/{ada}/consents/marketing", headers=mine,
                                json={"version": "marketing-2026-01", "accepted": False})
    assert refused.status == 422

    withdrawn = await client.delete(f"/api/v1/accounts/{ada}/consents/marketing",
                                    headers=mine)
    assert withdrawn.status == 200 and (await withdrawn.json())["changed"] is True
    marketing = await _marketing(client, ada, mine)
    assert (marketing["given"], marketing["withdrawn_via"]) == (False, "account")

    # The terms are the basis of the account: withdrawing them is closing the account.
    terms = await client.delete(f"/api/v1/accounts/{ada}/consents/terms", headers=mine)
    assert terms.status == 409
    assert terms.content_type == "application/problem+json"
    assert "deactivate" in (await terms.json())["detail"]

    # Nobody else's consents exist for a customer; staff see them; only the person gives
    # consent; an admin records a withdrawal asked for by the customer.
    for method, json in (("GET", None), ("POST", MARKETING), ("DELETE", None)):
        path = (f"/api/v1/accounts/{bob}/consents" if method == "GET"
                else f"/api/v1/accounts/{bob}/consents/marketing")
        other = await client.request(method, path, headers=mine, json=json)
        assert other.status == 404, method
    staff_view = await client.get(f"/api/v1/accounts/{ada}/consents",
                                  headers=auth("concierge"))
    assert staff_view.status == 200
    on_behalf = await client.post(f"/api/v1/accounts/{bob}/consents/marketing",
                                  headers=auth("admin"), json=MARKETING)
    assert on_behalf.status == 403
    bob_mine = bearer(await signed_in(client, "bob@example.com"))
    await client.post(f"/api/v1/accounts/{bob}/consents/marketing", headers=bob_mine,
                      json=MARKETING)
    by_admin = await client.delete(f"/api/v1/accounts/{bob}/consents/marketing",
                                   headers=auth("admin"))
    assert by_admin.status == 200, await by_admin.text()
    assert (await _marketing(client, bob, bob_mine))["withdrawn_via"] == "staff"
    unknown = await client.get(f"/api/v1/accounts/{UUID(int=7)}/consents",
                               headers=auth("super_admin"))
    assert unknown.status == 404
