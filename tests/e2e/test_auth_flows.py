"""Sign-up, sign-in, sessions and account commands over HTTP, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.auth_support import PASSWORD, bearer, login, register, signed_in, verify_email

PROBLEM = "application/problem+json"


async def test_register_login_and_read_own_account(app_client: Any) -> None:
    created = await register(app_client, email="Ada@Example.com", phone="+44 20 7946 0000")
    tokens = await signed_in(app_client, email="ada@EXAMPLE.com")
    assert tokens["account_id"] == created["id"] and tokens["role"] == "customer"
    assert tokens["expires_in"] == 15 * 60 and tokens["refresh_expires_in"] == 30 * 24 * 3600
    own = await app_client.get(f"/api/v1/accounts/{created['id']}",
                               params={"min_position": created["position"]},
                               headers=bearer(tokens))
    assert own.status == 200
    body = await own.json()
    assert (body["email"], body["role"], body["status"], body["consent_version"]) == (
        "Ada@Example.com", "customer", "active", "2026-01")
    assert body["consent_at"] is not None and "password" not in str(body).lower()


async def test_email_is_unique_case_insensitively_even_concurrently(app_client: Any) -> None:
    await register(app_client, email="ada@example.com")
    again = await app_client.post("/api/v1/auth/register", json={
        "email": "ADA@example.com", "name": "Other", "password": PASSWORD,
        "consent": {"version": "1", "accepted": True}})
    assert again.status == 409 and again.content_type == PROBLEM

    bodies = [{"email": "Grace@example.com", "name": f"G{n}", "password": PASSWORD,
               "consent": {"version": "1", "accepted": True}} for n in range(5)]
    answers = await asyncio.gather(
        *(app_client.post("/api/v1/auth/register", json=b) for b in bodies))
    assert sorted(a.status for a in answers) == [201, 409, 409, 409, 409]


async def test_registration_rules_are_422_field_errors(app_client: Any) -> None:
    bad = {"email": "nope", "name": "", "password": "short", "consent": {"version": "1",
                                                                       "accepted": False}}
    response = await app_client.post("/api/v1/auth/register", json=bad)
    assert response.status == 422
    fields = {e["field"] for e in (await response.json())["errors"]}
    assert fields == {"body.email", "body.name", "body.password", "body.consent.accepted"}
    too_long = "é" * 37  # 74 bytes in UTF-8, 37 characters
    response = await app_client.post("/api/v1/auth/register", json={
        "email": "a@b.example", "name": "A", "password": too_long,
        "consent": {"version": "1", "accepted": True}})
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "body.password"


async def test_wrong_password_and_unknown_email_answer_alike(app_client: Any) -> None:
    await register(app_client)
    wrong = await login(app_client, password="Wrong-password-1")
    unknown = await login(app_client, email="nobody@example.com")
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["detail"] == (await unknown.json())["detail"]


async def test_refresh_rotates_and_reuse_revokes_the_family(service: Any) -> None:
    app_client = await service(refresh_reuse_grace_s=0)  # any reuse at once (no grace)
    await register(app_client)
    first = await signed_in(app_client)
    rotated = await app_client.post("/api/v1/auth/refresh",
                                    json={"refresh_token": first["refresh_token"]})
    assert rotated.status == 200
    second = await rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    third = await (await app_client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})).json()

    reuse = await app_client.post("/api/v1/auth/refresh",
                                  json={"refresh_token": first["refresh_token"]})
    assert reuse.status == 401
    # every descendant of the reused token is dead now
    latest = await app_client.post("/api/v1/auth/refresh",
                                    json={"refresh_token": third["refresh_token"]})
    assert latest.status == 401
    # another sign-in (another family) is unaffected
    other = await signed_in(app_client)
    assert (await app_client.post("/api/v1/auth/refresh", json={
        "refresh_token": other["refresh_token"]})).status == 200


async def test_concurrent_refreshes_with_one_token_all_succeed(app_client: Any) -> None:
    await register(app_client)
    tokens = await signed_in(app_client)
    answers = await asyncio.gather(*(
        app_client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        for _ in range(6)))
    assert [a.status for a in answers] == [200] * 6  # within the grace window
    successors = [(await a.json())["refresh_token"] for a in answers]
    assert len(set(successors)) == 6
    for successor in successors:  # the family lives on, every branch of it
        assert (await app_client.post("/api/v1/auth/refresh", json={
            "refresh_token": successor})).status == 200


async def test_logout_revokes_refresh_and_access_tokens(app_client: Any) -> None:
    created = await register(app_client)
    tokens = await signed_in(app_client)
    out = await app_client.post("/api/v1/auth/logout",
                                json={"refresh_token": tokens["refresh_token"]},
                                headers=bearer(tokens))
    assert out.status == 204
    assert (await app_client.post("/api/v1/auth/refresh", json={
        "refresh_token": tokens["refresh_token"]})).status == 401
    assert (await app_client.get(f"/api/v1/accounts/{created['id']}",
                                 headers=bearer(tokens))).status == 401


async def test_deactivation_refuses_tokens_at_once(app_client: Any, auth: Any) -> None:
    created = await register(app_client)
    tokens = await signed_in(app_client)
    off = await app_client.post(f"/api/v1/accounts/{created['id']}/deactivate",
                                headers=auth("admin"))
    assert off.status == 200
    assert (await app_client.get(f"/api/v1/accounts/{created['id']}",
                                 headers=bearer(tokens))).status == 401
    assert (await app_client.post("/api/v1/auth/refresh", json={
        "refresh_token": tokens["refresh_token"]})).status == 401
    assert (await login(app_client)).status == 401


async def test_customers_reach_only_themselves(app_client: Any, auth: Any) -> None:
    ada = await register(app_client)
    grace = await register(app_client, email="grace@example.com", name="Grace")
    ada_tokens = await signed_in(app_client)
    for method, path, body in [
        ("GET", f"/api/v1/accounts/{grace['id']}", None),
        ("PUT", f"/api/v1/accounts/{grace['id']}/profile", {"name": "Mallory"}),
        ("PUT", f"/api/v1/accounts/{grace['id']}/password",
         {"current_password": PASSWORD, "new_password": "Another-pass-9"}),
        ("POST", f"/api/v1/accounts/{grace['id']}/deactivate", None),
    ]:
        response = await app_client.request(method, path, json=body, headers=bearer(ada_tokens))
        assert response.status == 404, (method, path)
    renamed = await app_client.put(f"/api/v1/accounts/{ada['id']}/profile",
                                   json={"name": "Ada King", "email": "ada.king@example.com"},
                                   headers=bearer(ada_tokens))
    assert renamed.status == 200
    assert (await login(app_client, email="ada.king@example.com")).status == 401  # not yet
    await verify_email(app_client, ada_tokens)
    assert (await signed_in(app_client, email="ada.king@example.com"))["account_id"] == ada["id"]
    assert (await app_client.get("/api/v1/accounts", headers=bearer(ada_tokens))).status == 403
    await verify_email(app_client, await signed_in(app_client, email="grace@example.com"))
    taken = await app_client.put(f"/api/v1/accounts/{ada['id']}/profile",
                                 json={"email": "GRACE@example.com"}, headers=bearer(ada_tokens))
    assert taken.status == 409


async def test_password_change_needs_the_current_one_and_ends_sessions(app_client: Any) -> None:
    created = await register(app_client)
    tokens = await signed_in(app_client)
    path = f"/api/v1/accounts/{created['id']}/password"
    wrong = await app_client.put(path, json={"current_password": "Not-the-one-1",
                                             "new_password": "Brand-new-pass-7"},
                                 headers=bearer(tokens))
    assert wrong.status == 422
    changed = await app_client.put(path, json={"current_password": PASSWORD,
                                               "new_password": "Brand-new-pass-7"},
                                   headers=bearer(tokens))
    assert changed.status == 200
    assert (await login(app_client)).status == 401
    assert (await login(app_client, password="Brand-new-pass-7")).status == 200
    assert (await app_client.post("/api/v1/auth/refresh", json={
        "refresh_token": tokens["refresh_token"]})).status == 401


async def test_role_changes_by_super_admins_only(app_client: Any, auth: Any) -> None:
    created = await register(app_client)
    tokens = await signed_in(app_client)
    path = f"/api/v1/accounts/{created['id']}/role"
    assert (await app_client.put(path, json={"role": "concierge"},
                                 headers=auth("admin"))).status == 403
    promoted = await app_client.put(path, json={"role": "concierge"},
                                    headers=auth("super_admin"))
    assert promoted.status == 200
    # the old token carries the old role: refused; a refresh gives the new role
    assert (await app_client.get(f"/api/v1/accounts/{created['id']}",
                                 headers=bearer(tokens))).status == 401
    renewed = await (await app_client.post("/api/v1/auth/refresh", json={
        "refresh_token": tokens["refresh_token"]})).json()
    assert renewed["role"] == "concierge"
    listed = await app_client.get("/api/v1/accounts", params={
        "role": "concierge", "min_position": (await promoted.json())["position"]},
        headers=bearer(renewed))
    assert [a["id"] for a in (await listed.json())["accounts"]] == [created["id"]]
    bad = await app_client.put(path, json={"role": "emperor"}, headers=auth("super_admin"))
    assert bad.status == 422


async def test_admins_manage_customers_not_staff(app_client: Any, auth: Any) -> None:
    staff = await register(app_client, email="sam@example.com", name="Sam")
    await app_client.put(f"/api/v1/accounts/{staff['id']}/role", json={"role": "concierge"},
                         headers=auth("super_admin"))
    off = await app_client.post(f"/api/v1/accounts/{staff['id']}/deactivate",
                                headers=auth("admin"))
    assert off.status == 403
    assert (await app_client.post(f"/api/v1/accounts/{staff['id']}/deactivate",
                                  headers=auth("super_admin"))).status == 200


async def test_staff_search_by_email_name_role_status(app_client: Any, auth: Any) -> None:
    await register(app_client, email="ada@example.com", name="Ada Lovelace")
    await register(app_client, email="grace@navy.example", name="Grace Hopper")
    last = await register(app_client, email="alan@example.com", name="Alan Turing")
    admin = auth("admin")
    await app_client.post(f"/api/v1/accounts/{last['id']}/deactivate", headers=admin)

    async def names(**params: Any) -> list[str]:
        response = await app_client.get("/api/v1/accounts", params={
            "min_position": last["position"] + 1, **params}, headers=auth("concierge"))
        assert response.status == 200
        return sorted(a["name"] for a in (await response.json())["accounts"])

    assert await names(q="HOPPER") == ["Grace Hopper"]
    assert await names(q="example.com", role="customer") == ["Ada Lovelace", "Alan Turing"]
    assert await names(status="deactivated") == ["Alan Turing"]
    assert await names(q="%") == []
