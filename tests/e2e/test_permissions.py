"""The permission matrix, walked route by route with every role and with no token."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from midas.app import all_endpoints
from midas.http.auth import Role, issue_access_token
from midas.http.permissions import (
    AUDITOR_MAY_CALL,
    RULES,
    missing_rules,
    permits,
)

ROLES = [None, *Role]
_PARAM = re.compile(r"\{[^}]+\}")


def route_keys() -> set[str]:
    """The API's routes and the staff console's (which are not API endpoints)."""
    from midas import console

    return {f"{e.method} {e.path}" for e in all_endpoints()} | {
        f"{method} {path}" for method, path, _ in console.routes()}


def test_every_route_has_a_rule() -> None:
    assert missing_rules((e.method, e.path) for e in all_endpoints()) == []


def test_the_matrix_has_no_stale_rules() -> None:
    assert sorted(set(RULES) - route_keys()) == []


def test_rules_are_public_authenticated_or_known_roles() -> None:
    for key, rule in RULES.items():
        assert rule in ("public", "authenticated") or (
            isinstance(rule, frozenset) and rule and rule <= set(Role)), key


def test_a_new_route_without_a_rule_stops_the_service(monkeypatch: Any, settings: Any) -> None:
    from midas import app as app_module
    from midas.http.api import Endpoint

    async def handler(request: Any) -> Any:
        raise AssertionError("never called")

    extra = Endpoint("GET", "/api/v1/unguarded", handler, "query", "no rule")
    monkeypatch.setattr(app_module, "all_endpoints",
                        lambda: [*all_endpoints(), extra])
    with pytest.raises(ValueError, match="GET /api/v1/unguarded"):
        app_module.create_app(settings)


async def test_every_route_answers_each_role_as_the_matrix_says(
    app_client: Any, auth: Any, settings: Any
) -> None:
    accounts = {role: uuid.uuid4() for role in Role}
    for role, account_id in accounts.items():
        auth(role.value, account_id)

    def headers(role: Role | None) -> dict[str, str]:
        """A fresh token per request: walking the logout route revokes the one it gets."""
        if role is None:
            return {}
        return {"Authorization": f"Bearer {issue_access_token(settings, accounts[role], role)}"}

    wrong = []
    for endpoint in all_endpoints():
        path = _PARAM.sub(lambda _: str(uuid.uuid4()), endpoint.path)
        for role in ROLES:
            body = None if endpoint.method in ("GET", "DELETE") else {}
            response = await app_client.request(endpoint.method, path, json=body,
                                                headers=headers(role))
            status = response.status
            await response.read()
            if permits(endpoint.method, endpoint.path, role):
                ok = status not in (401, 403)
            elif role is None:
                ok = status == 401
            else:
                ok = status == 403
            if not ok:
                wrong.append(f"{endpoint.method} {endpoint.path} as {role}: {status}")
    assert wrong == []


def test_auditors_may_call_only_reads_and_the_listed_routes() -> None:
    """The guard, route by route: every route that is not a read is closed to auditors
    unless listed, whatever its rule says (e.g. "authenticated" or "public")."""
    assert sorted(AUDITOR_MAY_CALL - route_keys()) == []
    assert all(not key.startswith("GET ") for key in AUDITOR_MAY_CALL)
    for endpoint in all_endpoints():
        key = f"{endpoint.method} {endpoint.path}"
        if endpoint.method == "GET" or key in AUDITOR_MAY_CALL:
            continue
        assert not permits(endpoint.method, endpoint.path, Role.AUDITOR), key


async def test_an_auditor_is_refused_every_route_that_changes_state(
    app_client: Any, auth: Any
) -> None:
    """Over HTTP, with a valid auditor token and a well-formed body where one is needed:
    403 before any handler runs, on every route other than GET and the listed ones."""
    auditor = auth("auditor")
    refused, others = [], []
    for endpoint in all_endpoints():
        key = f"{endpoint.method} {endpoint.path}"
        if endpoint.method == "GET" or key in AUDITOR_MAY_CALL:
            continue
        path = _PARAM.sub(lambda _: str(uuid.uuid4()), endpoint.path)
        response = await app_client.request(endpoint.method, path, json={}, headers=auditor)
        body = await response.json()
        if response.status == 403 and body["detail"].startswith("An auditor"):
            refused.append(key)
        elif response.status != 403:
            others.append(f"{key}: {response.status}")
    assert others == []
    assert "POST /api/v1/bookings" in refused and "POST /api/v1/errors" in refused
