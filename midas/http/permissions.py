"""The permission matrix: every route and who may call it, in one place.

Keys are "METHOD /path" exactly as routes are declared. A route without a rule makes
create_app fail, so a new route cannot ship unguarded. Ownership (a customer reaching
only their own bookings) is checked by the handlers, which answer 404 for others' ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from midas.http.auth import ADMINS, AUDITORS, STAFF, Role

PUBLIC = "public"  # no token needed
AUTHENTICATED = "authenticated"  # any valid token, any role
Rule = str | frozenset[Role]
SUPER_ADMINS = frozenset({Role.SUPER_ADMIN})
CUSTOMERS_AND_ADMINS = frozenset({Role.CUSTOMER, *ADMINS})  # customers close their own

RULES: dict[str, Rule] = {
    # notifications and errors (issue 6)
    "POST /api/v1/errors": PUBLIC,  # any token, or anonymous within a per-IP rate limit
    "GET /api/v1/admin/errors": STAFF,
    "GET /api/v1/admin/notifications/outbox": STAFF,
    "GET /api/v1/admin/notifications/stats": STAFF,
    "POST /api/v1/admin/notifications/outbox/{id}/retry": ADMINS,
    "GET /api/v1/notifications/opened/{token}": PUBLIC,  # the open-tracking pixel
    # customers, loyalty and reports (issue 7); a customer reads only their own profile
    # and points (checked in the handlers: others' ids are 404)
    "GET /api/v1/customers": STAFF,
    "GET /api/v1/customers/{id}": AUTHENTICATED,
    "GET /api/v1/customers/{id}/points": AUTHENTICATED,
    "POST /api/v1/customers/{id}/notes": STAFF,
    "PUT /api/v1/customers/{id}/tier": ADMINS,
    "POST /api/v1/customers/segments/{segment}/messages": ADMINS,
    "GET /api/v1/admin/dashboard": STAFF,
    "GET /api/v1/reports/financial": STAFF,
    "GET /api/v1/reports/operational": STAFF,
    "GET /api/v1/reports/customers": STAFF,
    # system
    "GET /health": PUBLIC,
    "GET /ready": PUBLIC,
    "GET /metrics": STAFF,
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    # auth and accounts (customers reach only their own account: checked in the handlers)
    "POST /api/v1/auth/register": PUBLIC,
    "POST /api/v1/auth/login": PUBLIC,
    "POST /api/v1/auth/refresh": PUBLIC,
    "POST /api/v1/auth/logout": PUBLIC,  # revokes the refresh token, and the access token if sent
    "POST /api/v1/auth/google": PUBLIC,
    "GET /api/v1/accounts": STAFF,
    "GET /api/v1/accounts/{id}": AUTHENTICATED,
    "PUT /api/v1/accounts/{id}/profile": AUTHENTICATED,  # self; admins customers; super any
    "PUT /api/v1/accounts/{id}/password": AUTHENTICATED,  # one's own only
    "PUT /api/v1/accounts/{id}/role": SUPER_ADMINS,
    "POST /api/v1/accounts/{id}/deactivate": CUSTOMERS_AND_ADMINS,
    "POST /api/v1/accounts/{id}/erase": SUPER_ADMINS,  # GDPR erasure (crypto-shredding)
    # inventory
    "POST /api/v1/items": ADMINS,
    "PUT /api/v1/items/{id}/rate": ADMINS,
    "POST /api/v1/items/{id}/deactivate": ADMINS,
    "GET /api/v1/items": PUBLIC,
    "GET /api/v1/items/{id}": PUBLIC,
    "PUT /api/v1/items/{id}/status": ADMINS,
    "POST /api/v1/items/{id}/maintenance": ADMINS,
    "DELETE /api/v1/items/{id}/maintenance/{window_id}": ADMINS,
    "PUT /api/v1/items/{id}/maintenance-plan": ADMINS,
    "POST /api/v1/items/{id}/blocks": ADMINS,
    "DELETE /api/v1/items/{id}/blocks/{block_id}": ADMINS,
    "POST /api/v1/items/bulk/rates": ADMINS,
    "POST /api/v1/items/bulk/status": ADMINS,
    "POST /api/v1/items/bulk/maintenance": ADMINS,
    "GET /api/v1/items/{id}/calendar": PUBLIC,  # staff see kinds and ids, others busy/free
    # pricing and availability
    "POST /api/v1/quotes": PUBLIC,
    "PUT /api/v1/pricing/locations/{code}/seasons": ADMINS,
    "PUT /api/v1/pricing/locations/{code}/tax-rate": ADMINS,
    "GET /api/v1/availability": PUBLIC,
    # bookings (a customer reaches only their own: checked in the handlers)
    "POST /api/v1/bookings": AUTHENTICATED,
    "GET /api/v1/bookings": AUTHENTICATED,
    "GET /api/v1/bookings/{id}": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/cancel": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/confirm": STAFF,
    "POST /api/v1/bookings/{id}/check-out": STAFF,
    "POST /api/v1/bookings/{id}/check-in": STAFF,
    "PUT /api/v1/bookings/{id}/concierge": STAFF,
    "POST /api/v1/bookings/{id}/force-majeure": ADMINS,
    # calendar sync (issue 9): feeds answer staff, the owner, or the owner's feed token
    # (checked in the handlers; anything else is 404); token routes: the owner or admins
    "GET /api/v1/calendar/feeds/items/{id}/feed.ics": PUBLIC,
    "GET /api/v1/calendar/feeds/customers/{id}/feed.ics": PUBLIC,
    "GET /api/v1/calendar/feeds/concierges/{id}/feed.ics": PUBLIC,
    "POST /api/v1/calendar/feeds/items/{id}/token": ADMINS,
    "DELETE /api/v1/calendar/feeds/items/{id}/token": ADMINS,
    "POST /api/v1/calendar/feeds/customers/{id}/token": AUTHENTICATED,
    "DELETE /api/v1/calendar/feeds/customers/{id}/token": AUTHENTICATED,
    "POST /api/v1/calendar/feeds/concierges/{id}/token": STAFF,
    "DELETE /api/v1/calendar/feeds/concierges/{id}/token": STAFF,
    "POST /api/v1/calendar/items/{id}/subscriptions": ADMINS,
    "GET /api/v1/calendar/items/{id}/subscriptions": STAFF,
    "DELETE /api/v1/calendar/subscriptions/{id}": ADMINS,
    "POST /api/v1/calendar/subscriptions/{id}/poll": ADMINS,
    "POST /api/v1/calendar/items/{id}/import": ADMINS,
    "GET /api/v1/calendar/conflicts": STAFF,
    "GET /api/v1/calendar/integration-errors": STAFF,
    "PUT /api/v1/calendar/items/{id}/google": ADMINS,
    "DELETE /api/v1/calendar/items/{id}/google": ADMINS,
    "POST /api/v1/calendar/items/{id}/google/sync": ADMINS,
    # payments (issue 5): a customer pays and reads only their own booking's payments
    # (checked in the handlers); webhooks are authenticated by their signature / PayPal
    "POST /api/v1/bookings/{id}/payments": AUTHENTICATED,
    "GET /api/v1/bookings/{id}/payments": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/refunds": ADMINS,
    "POST /api/v1/bookings/{id}/deposit/capture": STAFF,
    "POST /api/v1/bookings/{id}/deposit/release": STAFF,
    "GET /api/v1/payments/issues": STAFF,
    "POST /api/v1/webhooks/stripe": PUBLIC,
    "POST /api/v1/webhooks/paypal": PUBLIC,
    # audit (issue 8): the log itself, read only, for auditors and super admins
    "GET /api/v1/audit/events": AUDITORS,
    "GET /api/v1/audit/streams/{id}": AUDITORS,
    "GET /api/v1/audit/streams/{id}/state": AUDITORS,
    "GET /api/v1/audit/bookings/{id}/timeline": AUDITORS,
    "GET /api/v1/audit/read-models/{name}": AUDITORS,
    "GET /api/v1/audit/verify": AUDITORS,
    "GET /api/v1/audit/checkpoint": AUDITORS,
    "POST /api/v1/audit/checkpoint/verify": AUDITORS,
    "GET /api/v1/audit/export": AUDITORS,
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
