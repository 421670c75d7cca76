"""The permission matrix: every route and who may call it, in one place.

Keys are "METHOD /path" exactly as routes are declared. A route without a rule makes
create_app fail, so a new route cannot ship unguarded. Ownership (a customer reaching
only their own bookings) is checked by the handlers, which answer 404 for others' ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from midas.http.auth import ADMINS, STAFF, Role

PUBLIC = "public"  # no token needed
AUTHENTICATED = "authenticated"  # any valid token, any role
Rule = str | frozenset[Role]

RULES: dict[str, Rule] = {
    # system
    "GET /health": PUBLIC,
    "GET /ready": PUBLIC,
    "GET /metrics": STAFF,
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    # inventory
    "POST /api/v1/items": ADMINS,
    "PUT /api/v1/items/{id}/rate": ADMINS,
    "POST /api/v1/items/{id}/deactivate": ADMINS,
    "GET /api/v1/items": PUBLIC,
    "GET /api/v1/items/{id}": PUBLIC,
}


def rule_for(method: str, path: str) -> Rule | None:
    return RULES.get(f"{method} {path}")


def missing_rules(routes: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{m} {p}" for m, p in routes if rule_for(m, p) is None]


def allows(rule: Rule, role: Role | None) -> bool:
    if rule == PUBLIC:
        return True
    if role is None:
        return False
    return rule == AUTHENTICATED or (isinstance(rule, frozenset) and role in rule)
