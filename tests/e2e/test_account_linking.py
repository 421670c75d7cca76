"""No account takeover through sign-in linking: email verification links (sent through the
outbox to a real SMTP server), Google sign-in against a password account, email changes,
staff accounts and lockouts. Google is stood in for by our own JWKS and RSA key."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import pytest

from midas.config import Settings
from midas.http.keys import DATABASE, GATE, NOTIFICATIONS
from tests.e2e.auth_support import (
    CONSENT,
    PASSWORD,
    bearer,
    login,
    register,
    signed_in,
    verify_email,
)
from tests.support.fake_google import FakeGoogleSignIn
from tests.support.smtp import Inbox, parts, smtp_server

CLIENT_ID = "midas-web.apps.example"
VICTIM = "victim@example.com"
ATTACKER_PASSWORD = "Attackers-own-pass-1"
WRONG = "Wrong-password-0"
PROBLEM = "application/problem+json"


@pytest.fixture
def inbox_and_provider() -> Any:
    with smtp_server() as pair:
        yield pair


@pytest.fixture
def inbox(inbox_and_provider: Any) -> Inbox:
    return inbox_and_provider[0]


@pytest.fixture
async def google_keys(aiohttp_server: Any) -> FakeGoogleSignIn:
    fake = FakeGoogleSignIn(CLIENT_ID)
    server = await aiohttp_server(fake.app)
    fake.jwks_url = str(server.make_url("/certs"))
    return fake


@pytest.fixture
def settings(settings: Settings, inbox_and_provider: Any, google_keys: Any) -> Settings:
    """The test SMTP server (tests run the delivery worker) and Google sign-in."""
    return settings.model_copy(update={
        "smtp_providers": [inbox_and_provider[1]], "email_delivery_enabled": False,
        "public_base_url": "https://midas.test", "google_client_id": CLIENT_ID,
        "google_jwks_url": google_keys.jwks_url, "login_rate_limit": 1000,
    })


# -- helpers ---------------------------------------------------------------------------


async def head(client: Any) -> int:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")


async def settle(client: Any) -> None:
    """Let the notifications process manager reach the head, then deliver what is due."""
    app = client.server.app
    await app[GATE].wait(("notifications",), await head(client))
    await app[NOTIFICATIONS].run_until_idle()


def mail(inbox: Inbox, template: str, to: str) -> list[EmailMessage]:
    return [m for m in inbox.by_template(template) if m["To"] == to]


def link_token(message: EmailMessage) -> str:
    """The token of the link in an email (in the URL's fragment, in both parts)."""
    body = parts(message)
    found = re.search(r"/verify-email#token=([A-Za-z0-9_-]+)", body["text/plain"])
    assert found is not None, body["text/plain"]
    assert found.group(1) in body["text/html"]
    return found.group(1)


async def google(client: Any, token: str, consent: Any = CONSENT) -> Any:
    body = {"id_token": token, **({"consent": consent} if consent else {})}
    return await client.post("/api/v1/auth/google", json=body)


async def confirm(client: Any, tokens: dict[str, Any], token: str) -> Any:
    return await client.post("/api/v1/auth/verify-email", json={"token": token},
                             headers=bearer(tokens))


async def view(client: Any, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/api/v1/accounts/{tokens['account_id']}",
                                params={"min_position": await head(client)},
                                headers=bearer(tokens))
    assert response.status == 200, await response.text()
    return await response.json()


async def sign_in_row(client: Any, account_id: str) -> Any:
    async with client.server.app[DATABASE].acquire() as conn:
        return await conn.fetchrow(
            "SELECT email, active, password_hash, google_subject, email_verified"
            " FROM auth_accounts WHERE account_id = $1", UUID(account_id))


# -- the attacker scenario -------------------------------------------------------------


async def test_an_attackers_unverified_account_never_captures_the_victims_google_sign_in(
    make_client: Any, google_keys: FakeGoogleSignIn
) -> None:
    client = await make_client()
    attacker = await register(client, email=VICTIM, password=ATTACKER_PASSWORD)
    attacker_tokens = await signed_in(client, email=VICTIM, password=ATTACKER_PASSWORD)

    response = await google(client, google_keys.id_token("g-victim", VICTIM))
    assert response.status == 200, await response.text()
    victim = await response.json()
    assert victim["account_id"] != attacker["id"]  # the victim is not in the attacker's account

    # The attacker's password reaches nothing any more, and their sessions are over.
    assert (await login(client, email=VICTIM, password=ATTACKER_PASSWORD)).status == 401
    assert (await client.post("/api/v1/auth/refresh", json={
        "refresh_token": attacker_tokens["refresh_token"]})).status == 401
    assert (await client.get(f"/api/v1/accounts/{attacker['id']}",
                             headers=bearer(attacker_tokens))).status == 401
    row = await sign_in_row(client, attacker["id"])
    assert "@" not in row["email"] and not row["active"] and row["password_hash"] is None
    assert row["google_subject"] is None

    # The victim's account holds the address, verified by Google, without any password.
    mine = await view(client, victim)
    assert (mine["email"], mine["email_verified"], mine["google_linked"]) == (
        VICTIM, True, True)
    assert (await sign_in_row(client, victim["account_id"]))["password_hash"] is None
    again = await google(client, google_keys.id_token("g-victim", VICTIM), consent=None)
    assert (await again.json())["account_id"] == victim["account_id"]
    # Registering the address again is refused: it is held, verified.
    taken = await client.post("/api/v1/auth/register", json={
        "email": VICTIM, "name": "Mallory", "password": ATTACKER_PASSWORD, "consent": CONSENT})
    assert taken.status == 409


async def test_a_new_google_account_needs_consent_before_anything_is_released(
    make_client: Any, google_keys: FakeGoogleSignIn
) -> None:
    client = await make_client()
    await register(client, email=VICTIM, password=ATTACKER_PASSWORD)
    refused = await google(client, google_keys.id_token("g-victim", VICTIM), consent=None)
    assert refused.status == 422
    assert (await signed_in(client, email=VICTIM, password=ATTACKER_PASSWORD))["account_id"]


async def test_google_links_a_password_account_once_its_email_is_verified(
    make_client: Any, google_keys: FakeGoogleSignIn
) -> None:
    client = await make_client()
    ada = await register(client, email="Ada@Example.com")
    tokens = await signed_in(client)
    await verify_email(client, tokens)
    response = await google(client, google_keys.id_token("g-ada", "ada@example.com"),
                            consent=None)
    assert response.status == 200
    assert (await response.json())["account_id"] == ada["id"]
    assert (await login(client)).status == 200  # the owner's password still works
    assert (await view(client, tokens))["google_linked"] is True


async def test_a_link_confirms_only_for_the_account_it_was_sent_to(
    make_client: Any, inbox: Inbox
) -> None:
    """The victim clicking the link the attacker's registration sent them verifies
    nothing: a link works only in a session of its own account."""
    client = await make_client()
    attacker = await register(client, email=VICTIM, password=ATTACKER_PASSWORD)
    attacker_tokens = await signed_in(client, email=VICTIM, password=ATTACKER_PASSWORD)
    await register(client, email="victim.other@example.com")
    victim_tokens = await signed_in(client, email="victim.other@example.com")
    await settle(client)
    (message,) = mail(inbox, "verify_email", VICTIM)
    token = link_token(message)

    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status == 401
    refused = await confirm(client, victim_tokens, token)
    assert refused.status == 410 and refused.content_type == PROBLEM
    assert (await view(client, attacker_tokens))["email_verified"] is False
    assert (await sign_in_row(client, attacker["id"]))["email_verified"] is False


# -- verification links ----------------------------------------------------------------


async def test_a_verification_link_works_once_and_only_before_it_expires(
    make_client: Any, clock: Any, inbox: Inbox, settings: Settings, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(clock)
    ada = await register(client, email="ada@example.com")
    bob = await register(client, email="bob@example.com", name="Bob")
    ada_tokens, bob_tokens = await signed_in(client), await signed_in(client, "bob@example.com")
    await settle(client)
    ada_link = link_token(mail(inbox, "verify_email", "ada@example.com")[0])
    bob_link = link_token(mail(inbox, "verify_email", "bob@example.com")[0])
    assert "Ada Lovelace" in parts(mail(inbox, "verify_email", "ada@example.com")[0])[
        "text/plain"]

    clock.advance(seconds=settings.email_verification_ttl_s)
    clock.advance(microseconds=-1)  # just before the expiry
    verified = await confirm(client, ada_tokens, ada_link)
    assert verified.status == 200, await verified.text()
    assert (await verified.json())["id"] == ada["id"]
    assert (await confirm(client, ada_tokens, ada_link)).status == 410  # single use
    assert (await view(client, ada_tokens))["email_verified"] is True

    clock.advance(microseconds=1)  # exactly at the expiry
    assert (await confirm(client, bob_tokens, bob_link)).status == 410
    assert (await view(client, bob_tokens))["email_verified"] is False
    assert (await sign_in_row(client, bob["id"]))["email_verified"] is False
    # An unverified account still signs in and reads its own account.
    assert (await login(client, "bob@example.com")).status == 200

    # The tokens are nowhere in the clear: not in events, outbox, tables or logs.
    async with client.server.app[DATABASE].acquire() as conn:
        events = "\n".join(r["t"] for r in await conn.fetch(
            "SELECT type || data::text || metadata::text AS t FROM events"))
        outbox = "\n".join(r["t"] for r in await conn.fetch(
            "SELECT context::text || coalesce(last_error, '') AS t FROM notif_outbox"))
        stored = "\n".join(r["t"] for r in await conn.fetch(
            "SELECT row_to_json(v)::text AS t FROM auth_email_verifications v"))
    assert "Account.EmailVerified" in events and "verification_id" in outbox
    ours = [r for r in caplog.records if not r.name.startswith("mail.")]  # not the SMTP server
    logs = "\n".join(f"{r.getMessage()} {vars(r)}" for r in ours)
    for secret in (ada_link, bob_link):
        assert secret not in events and secret not in outbox and secret not in stored
        assert secret not in logs


async def test_concurrent_confirmations_of_one_link_verify_once(
    make_client: Any, inbox: Inbox
) -> None:
    client = await make_client()
    await register(client)
    tokens = await signed_in(client)
    await settle(client)
    token = link_token(mail(inbox, "verify_email", "ada@example.com")[0])
    answers = await asyncio.gather(*(confirm(client, tokens, token) for _ in range(5)))
    assert sorted(a.status for a in answers) == [200, 410, 410, 410, 410]
    async with client.server.app[DATABASE].acquire() as conn:
        verified = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'Account.EmailVerified'")
    assert verified == 1


async def test_a_resend_replaces_the_link_and_is_rate_limited(
    service: Any, inbox: Inbox
) -> None:
    client = await service(verification_email_limit=2)
    await register(client)
    tokens = await signed_in(client)
    resend = "/api/v1/auth/verify-email/resend"
    assert (await client.post(resend)).status == 401
    first = await client.post(resend, headers=bearer(tokens))
    assert first.status == 200, await first.text()
    await settle(client)
    # The registration's link was replaced before its email went out: it is not sent.
    (only,) = mail(inbox, "verify_email", "ada@example.com")
    async with client.server.app[DATABASE].acquire() as conn:
        statuses = [r["status"] for r in await conn.fetch(
            "SELECT status FROM notif_outbox WHERE template = 'verify_email' ORDER BY id")]
    assert statuses == ["skipped", "sent"]
    old = link_token(only)
    assert (await client.post(resend, headers=bearer(tokens))).status == 200
    limited = await client.post(resend, headers=bearer(tokens))
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    await settle(client)
    _, newest = mail(inbox, "verify_email", "ada@example.com")
    assert (await confirm(client, tokens, old)).status == 410  # replaced by the newest
    assert (await confirm(client, tokens, link_token(newest))).status == 200
    again = await service(verification_email_limit=10)
    verified = await again.post(resend, headers=bearer(tokens))
    assert verified.status == 409  # nothing left to verify


async def test_an_unverified_customer_may_browse_but_not_hold_a_booking(
    booking_client: Any, auth: Any
) -> None:
    client = booking_client
    await register(client)
    tokens = await signed_in(client)
    item = await client.post("/api/v1/items", headers=auth("admin"), json={
        "name": "Riva Aquarama", "category": "yacht", "location": "US-FL", "rate": 250_000})
    assert item.status == 201, await item.text()
    assert (await client.get("/api/v1/items")).status == 200
    stay = {"item_id": (await item.json())["id"], "start": "2026-12-01T10:00:00+00:00",
            "end": "2026-12-03T10:00:00+00:00", "service_level": "standard"}
    refused = await client.post("/api/v1/bookings", json=stay, headers=bearer(tokens))
    assert refused.status == 403 and refused.content_type == PROBLEM
    assert "verify your email" in (await refused.json())["detail"].lower()
    await verify_email(client, tokens)
    held = await client.post("/api/v1/bookings", json=stay, headers=bearer(tokens))
    assert held.status == 201, await held.text()


# -- email changes ---------------------------------------------------------------------


async def test_an_email_change_takes_effect_only_once_the_new_address_is_verified(
    make_client: Any, inbox: Inbox
) -> None:
    client = await make_client()
    ada = await register(client)
    tokens = await signed_in(client)
    await verify_email(client, tokens)
    changed = await client.put(f"/api/v1/accounts/{ada['id']}/profile",
                               json={"email": "ada.king@example.com"}, headers=bearer(tokens))
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["email_verification_sent"] is True

    # Without proof nothing changed: the old address signs in, the new one does not.
    assert (await login(client, "ada.king@example.com")).status == 401
    assert (await login(client)).status == 200
    mine = await view(client, tokens)
    assert (mine["email"], mine["pending_email"], mine["email_verified"]) == (
        "ada@example.com", "ada.king@example.com", True)

    await settle(client)
    (notice,) = mail(inbox, "email_change_requested", "ada@example.com")
    assert "a***@example.com" in parts(notice)["text/plain"]  # the new address, masked
    assert "#token=" not in parts(notice)["text/plain"]  # no link to the old address
    (message,) = mail(inbox, "verify_email", "ada.king@example.com")
    verified = await confirm(client, tokens, link_token(message))
    assert verified.status == 200, await verified.text()

    assert (await login(client, "ada.king@example.com")).status == 200
    assert (await login(client)).status == 401
    mine = await view(client, tokens)
    assert (mine["email"], mine["pending_email"], mine["email_verified"]) == (
        "ada.king@example.com", None, True)
    await settle(client)
    (told,) = mail(inbox, "email_changed", "ada@example.com")  # the old address is told
    assert "a***@example.com" in parts(told)["text/plain"]


async def test_email_changes_are_limited_like_resends(service: Any) -> None:
    client = await service(verification_email_limit=2)
    ada = await register(client)
    tokens = await signed_in(client)
    path = f"/api/v1/accounts/{ada['id']}/profile"
    for n in range(2):
        changed = await client.put(path, json={"email": f"ada{n}@example.com"},
                                   headers=bearer(tokens))
        assert changed.status == 200, await changed.text()
    limited = await client.put(path, json={"email": "ada9@example.com"},
                               headers=bearer(tokens))
    assert limited.status == 429
    resend = await client.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens))
    assert resend.status == 429  # one budget per account
    assert (await client.put(path, json={"name": "Ada King"},
                             headers=bearer(tokens))).status == 200  # no link: not counted


async def test_an_email_change_to_an_address_held_by_a_verified_account_is_refused(
    make_client: Any
) -> None:
    client = await make_client()
    ada = await register(client)
    tokens = await signed_in(client)
    await register(client, email="grace@example.com", name="Grace")
    grace = await signed_in(client, "grace@example.com")
    await verify_email(client, grace)
    taken = await client.put(f"/api/v1/accounts/{ada['id']}/profile",
                             json={"email": "GRACE@example.com"}, headers=bearer(tokens))
    assert taken.status == 409 and taken.content_type == PROBLEM


async def test_a_verified_change_takes_an_address_from_an_unverified_claim(
    make_client: Any, inbox: Inbox
) -> None:
    client = await make_client()
    ada = await register(client)
    tokens = await signed_in(client)
    squatter = await register(client, email="ada.king@example.com", name="Squatter",
                              password=ATTACKER_PASSWORD)
    changed = await client.put(f"/api/v1/accounts/{ada['id']}/profile",
                               json={"email": "ada.king@example.com"}, headers=bearer(tokens))
    assert changed.status == 200, await changed.text()
    await settle(client)
    (message,) = [m for m in mail(inbox, "verify_email", "ada.king@example.com")
                  if "Ada Lovelace" in parts(m)["text/plain"]]
    verified = await confirm(client, tokens, link_token(message))
    assert verified.status == 200, await verified.text()
    assert (await signed_in(client, "ada.king@example.com"))["account_id"] == ada["id"]
    assert (await login(client, "ada.king@example.com", ATTACKER_PASSWORD)).status == 401
    assert not (await sign_in_row(client, squatter["id"]))["active"]


async def test_an_unverified_claim_lapses_for_a_new_registration_when_its_link_expires(
    make_client: Any, clock: Any, settings: Settings
) -> None:
    client = await make_client(clock)
    squatter = await register(client, email=VICTIM, password=ATTACKER_PASSWORD)
    squatter_tokens = await signed_in(client, VICTIM, ATTACKER_PASSWORD)
    body = {"email": VICTIM, "name": "Victim", "password": PASSWORD, "consent": CONSENT}
    clock.advance(seconds=settings.email_verification_ttl_s)
    clock.advance(microseconds=-1)
    assert (await client.post("/api/v1/auth/register", json=body)).status == 409
    clock.advance(microseconds=1)
    registered = await client.post("/api/v1/auth/register", json=body)
    assert registered.status == 201, await registered.text()
    victim = await registered.json()
    assert (await signed_in(client, VICTIM))["account_id"] == victim["id"]
    assert (await login(client, VICTIM, ATTACKER_PASSWORD)).status == 401
    assert (await client.post("/api/v1/auth/refresh", json={
        "refresh_token": squatter_tokens["refresh_token"]})).status == 401
    assert not (await sign_in_row(client, squatter["id"]))["active"]


# -- staff and lockouts ----------------------------------------------------------------


async def test_staff_accounts_are_never_linked_by_email(
    make_client: Any, auth: Any, google_keys: FakeGoogleSignIn
) -> None:
    client = await make_client()
    sam = await register(client, email="sam@example.com", name="Sam")
    await verify_email(client, await signed_in(client, "sam@example.com"))
    promoted = await client.put(f"/api/v1/accounts/{sam['id']}/role",
                                json={"role": "concierge"}, headers=auth("super_admin"))
    assert promoted.status == 200
    refused = await google(client, google_keys.id_token("g-sam", "sam@example.com"))
    assert refused.status == 409 and refused.content_type == PROBLEM
    row = await sign_in_row(client, sam["id"])
    assert row["google_subject"] is None and row["active"] and row["email"] == "sam@example.com"
    async with client.server.app[DATABASE].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM auth_accounts") == 2  # no new one
    staff = await signed_in(client, "sam@example.com")
    assert staff["role"] == "concierge"


async def test_google_sign_in_waits_out_a_lockout(
    make_client: Any, clock: Any, google_keys: FakeGoogleSignIn
) -> None:
    client = await make_client(clock)
    ada = await register(client)
    await verify_email(client, await signed_in(client))
    token = google_keys.id_token("g-ada", "ada@example.com")

    async def lock() -> None:
        assert [(await login(client, password=WRONG)).status for _ in range(5)] == [401] * 5

    await lock()  # found by email: refused while locked, and not linked
    locked = await google(client, token)
    assert locked.status == 429 and locked.headers["Retry-After"] == str(15 * 60)
    assert (await sign_in_row(client, ada["id"]))["google_subject"] is None
    clock.advance(minutes=15)
    assert (await google(client, token)).status == 200
    assert (await sign_in_row(client, ada["id"]))["google_subject"] == "g-ada"

    await lock()  # found by its Google subject: refused as well
    clock.advance(minutes=29, seconds=59)
    locked = await google(client, token)
    assert locked.status == 429 and locked.headers["Retry-After"] == "1"
    clock.advance(seconds=1)
    assert (await (await google(client, token)).json())["account_id"] == ada["id"]


async def test_google_vouches_for_the_email_of_an_account_it_signs_into(
    make_client: Any, google_keys: FakeGoogleSignIn
) -> None:
    """An account linked to Google before verification existed becomes verified at its
    next Google sign-in when Google vouches for its current email."""
    from commands.accounts import change_account, create_account
    from commands.verification import link_statements, new_link
    from midas.http.keys import CLOCK, REPOSITORY, SETTINGS

    client = await make_client()
    app = client.server.app
    account_id, _ = await create_account(
        app[REPOSITORY], email="ada@example.com", name="Ada", password=None, rounds=4,
        metadata={}, consent_version="v1", consent_at=app[CLOCK](), google_subject="g-ada")

    def ask_for_a_link(account: Any) -> list[Any]:
        verification_id, expires_at = new_link(app[SETTINGS], app[CLOCK]())
        email = account.request_email_verification(str(verification_id), expires_at)
        return link_statements(app[SETTINGS], account, verification_id, email, expires_at)

    await change_account(app[REPOSITORY], account_id, ask_for_a_link, {})
    assert not (await sign_in_row(client, str(account_id)))["email_verified"]
    response = await google(client, google_keys.id_token("g-ada", "ada@example.com"))
    tokens = await response.json()
    assert tokens["account_id"] == str(account_id)
    assert (await view(client, tokens))["email_verified"] is True
    assert (await sign_in_row(client, str(account_id)))["email_verified"]
    async with app[DATABASE].acquire() as conn:  # the link is moot: not sent any more
        assert await conn.fetchval("SELECT revoked_at IS NOT NULL FROM"
                                   " auth_email_verifications WHERE account_id = $1",
                                   account_id)
    # Google vouches only for the address it names: another one verifies nothing.
    other, _ = await create_account(
        app[REPOSITORY], email="bob@example.com", name="Bob", password=None, rounds=4,
        metadata={}, consent_version="v1", consent_at=app[CLOCK](), google_subject="g-bob")
    signed = await google(client, google_keys.id_token("g-bob", "bob.new@example.com"))
    assert (await signed.json())["account_id"] == str(other)
    assert not (await sign_in_row(client, str(other)))["email_verified"]


def test_the_verification_lifetime_is_a_day_by_default() -> None:
    assert Settings().email_verification_ttl_s == int(timedelta(hours=24).total_seconds())
