"""The permission matrix: every route and who may call it, in one place.

Keys are "METHOD /path" exactly as routes are declared. A route without a rule makes
create_app fail, so a new route cannot ship unguarded. Ownership (a customer reaching
only their own bookings) is checked by the handlers, which answer 404 for others' ids.

Auditors read and change nothing: whatever a route's rule, an auditor may call a route
other than GET only when it is listed in ``AUDITOR_MAY_CALL`` (``permits``), so a new
route that writes is closed to auditors without anyone having to remember them.
"""

from __future__ import annotations

from collections.abc import Iterable

from midas.http.auth import ADMINS, AUDITORS, STAFF, Role

PUBLIC = "public"  # no token needed
AUTHENTICATED = "authenticated"  # any valid token, any role
Rule = str | frozenset[Role]
SUPER_ADMINS = frozenset({Role.SUPER_ADMIN})
CUSTOMERS_AND_ADMINS = frozenset({Role.CUSTOMER, *ADMINS})  # customers close their own
ACCOUNT_HOLDERS = frozenset({Role.CUSTOMER, *STAFF})  # everyone but the read-only auditors
STAFF_AND_AUDITORS = frozenset({*STAFF, *AUDITORS})  # everyone but customers

CONSOLE_PAGES = ("today", "timeline", "bookings/{id}", "customers", "customers/{id}", "items",
                 "items/{id}", "alerts")

RULES: dict[str, Rule] = {
    # notifications and errors
    "POST /api/v1/errors": PUBLIC,  # any token, or anonymous within a per-IP rate limit
    "GET /api/v1/admin/errors": STAFF,
    "GET /api/v1/admin/notifications/outbox": STAFF,
    "GET /api/v1/admin/notifications/stats": STAFF,
    "POST /api/v1/admin/notifications/outbox/{id}/retry": ADMINS,
    "GET /api/v1/notifications/opened/{token}": PUBLIC,  # the open-tracking pixel
    # customers, loyalty and reports; a customer reads only their own profile
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
    "GET /api/v1/reports/receivables": STAFF,
    # the service's clock, movable outside production only (404 in production)
    "GET /api/v1/admin/clock": STAFF,
    "POST /api/v1/admin/clock": ADMINS,
    # system
    "GET /health": PUBLIC,
    "GET /ready": PUBLIC,
    "GET /metrics": STAFF,
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /docs/swagger-ui.css": PUBLIC,
    "GET /docs/swagger-ui-bundle.js": PUBLIC,
    "GET /docs/swagger-initializer.js": PUBLIC,
    # auth and accounts (customers reach only their own account: checked in the handlers)
    "POST /api/v1/auth/register": PUBLIC,
    "POST /api/v1/auth/login": PUBLIC,
    "POST /api/v1/auth/refresh": PUBLIC,
    "POST /api/v1/auth/logout": PUBLIC,  # revokes the refresh token, and the access token if sent
    "POST /api/v1/auth/google": PUBLIC,
    # a link confirms only in a session of its own account; resends are per account
    "POST /api/v1/auth/verify-email": AUTHENTICATED,
    "POST /api/v1/auth/verify-email/resend": AUTHENTICATED,
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
    "PUT /api/v1/items/{id}/name": ADMINS,
    "PUT /api/v1/items/{id}/attributes": ADMINS,
    "PUT /api/v1/items/{id}/buffer": ADMINS,
    "PUT /api/v1/items/{id}/minimum": ADMINS,
    "PUT /api/v1/items/{id}/location": ADMINS,
    "PUT /api/v1/items/{id}/media": ADMINS,
    "PUT /api/v1/items/{id}/duration-discounts": ADMINS,
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
    "PUT /api/v1/pricing/duration-discounts/{category}": ADMINS,
    "PUT /api/v1/pricing/stay-rules": ADMINS,
    "PUT /api/v1/pricing/exchange-rates/{currency}": ADMINS,
    "GET /api/v1/pricing/rules": PUBLIC,  # what a customer's stay must respect
    "GET /api/v1/availability": PUBLIC,
    # extras around the item: the catalogue, managed by admins
    "GET /api/v1/extras": PUBLIC,
    "POST /api/v1/extras": ADMINS,
    "PUT /api/v1/extras/{code}": ADMINS,
    # the booking rules: changes, payment schedules, collection, points (events)
    "GET /api/v1/booking-rules": ADMINS,
    "PUT /api/v1/booking-rules/change-notice": ADMINS,
    "PUT /api/v1/booking-rules/payment-schedules/{category}": ADMINS,
    "PUT /api/v1/booking-rules/collection": ADMINS,
    "PUT /api/v1/booking-rules/points": ADMINS,
    # locations as data: admins add and change them (events of the pricing policy)
    "GET /api/v1/locations": PUBLIC,
    "GET /api/v1/locations/{code}": PUBLIC,
    "POST /api/v1/locations": ADMINS,
    "PUT /api/v1/locations/{code}": ADMINS,
    # bookings (a customer reaches only their own: checked in the handlers)
    "POST /api/v1/bookings": AUTHENTICATED,
    "GET /api/v1/bookings": AUTHENTICATED,
    "GET /api/v1/bookings/{id}": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/cancel": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/points": ACCOUNT_HOLDERS,  # a customer: their own only
    "POST /api/v1/bookings/{id}/changes": ACCOUNT_HOLDERS,  # a customer: their own only
    "POST /api/v1/bookings/{id}/instalments/{n}/due-date": STAFF,
    "POST /api/v1/bookings/{id}/instalments/{n}/waive": STAFF,
    "POST /api/v1/bookings/{id}/instalments/{n}/split": STAFF,
    "POST /api/v1/bookings/{id}/forfeit/waive": STAFF,
    "POST /api/v1/bookings/{id}/confirm": STAFF,
    "POST /api/v1/bookings/{id}/check-out": STAFF,
    "POST /api/v1/bookings/{id}/check-in": STAFF,
    "PUT /api/v1/bookings/{id}/concierge": STAFF,
    "POST /api/v1/bookings/{id}/force-majeure": ADMINS,
    "GET /api/v1/bookings/{id}/refund-preview": AUTHENTICATED,  # own; staff any
    # the fleet at a glance (the staff console reads these)
    "GET /api/v1/fleet/timeline": STAFF,
    "GET /api/v1/admin/workload": STAFF,
    "GET /api/v1/admin/trends": STAFF,
    # calendar sync: feeds answer staff, the owner, or the owner's feed token
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
    # payments: a customer pays and reads only their own booking's payments
    # (checked in the handlers); webhooks are authenticated by their signature / PayPal
    "POST /api/v1/bookings/{id}/payments": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/payments/confirm": AUTHENTICATED,
    "GET /api/v1/bookings/{id}/payments": AUTHENTICATED,
    "POST /api/v1/bookings/{id}/refunds": ADMINS,
    "POST /api/v1/bookings/{id}/deposit/capture": STAFF,
    "POST /api/v1/bookings/{id}/apa-statement": STAFF,  # after the charter
    "POST /api/v1/bookings/{id}/apa-top-up": ACCOUNT_HOLDERS,  # a customer: their own only
    "POST /api/v1/bookings/{id}/deposit/release": STAFF,
    "GET /api/v1/payments/issues": STAFF,
    "POST /api/v1/webhooks/stripe": PUBLIC,
    "POST /api/v1/webhooks/paypal": PUBLIC,
    # audit: the log itself, read only, for auditors and super admins
    "GET /api/v1/audit/events": AUDITORS,
    "GET /api/v1/audit/streams/{id}": AUDITORS,
    "GET /api/v1/audit/streams/{id}/state": AUDITORS,
    # a booking's story in plain words: also for the staff who run bookings
    "GET /api/v1/audit/bookings/{id}/timeline": STAFF_AND_AUDITORS,
    "GET /api/v1/audit/read-models/{name}": AUDITORS,
    "GET /api/v1/audit/verify": AUDITORS,
    "GET /api/v1/audit/checkpoint": AUDITORS,
    "POST /api/v1/audit/checkpoint/verify": AUDITORS,
    "GET /api/v1/audit/export": AUDITORS,
    "GET /api/v1/audit/security-events": AUDITORS,  # the append-only security record
    # consent and personal data: the handlers check whose account it is (customers reach
    # only their own: others' ids are 404); the unsubscribe link is its own credential
    "GET /api/v1/accounts/{id}/consents": AUTHENTICATED,  # own; staff any
    "POST /api/v1/accounts/{id}/consents/marketing": ACCOUNT_HOLDERS,  # own only
    "DELETE /api/v1/accounts/{id}/consents/marketing": ACCOUNT_HOLDERS,  # own; as profile
    "DELETE /api/v1/accounts/{id}/consents/terms": ACCOUNT_HOLDERS,  # always 409
    "GET /api/v1/accounts/{id}/export": AUTHENTICATED,  # own; super admins any
    "GET /api/v1/notifications/unsubscribe/{token}": PUBLIC,  # a confirmation page
    # the staff console: its page shells hold no data (public); the fragments, rendered from
    # the API's answers as the caller, are for staff (customers and auditors refused)
    "GET /console": PUBLIC,
    "GET /console/sign-in": PUBLIC,
    **{f"GET /console/{page}": PUBLIC for page in CONSOLE_PAGES},
    **{f"GET /console/fragments/{page}": STAFF for page in CONSOLE_PAGES},
    "POST /api/v1/notifications/unsubscribe/{token}": PUBLIC,  # RFC 8058 one-click
}


# The only routes other than GET an auditor may call: its own session and credentials, and
# POSTs that compute an answer without storing anything.
AUDITOR_MAY_CALL = frozenset({
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/google",
    "PUT /api/v1/accounts/{id}/password",  # one's own only (checked in the handler)
    "POST /api/v1/auth/verify-email",  # one's own address, by the link sent to it
    "POST /api/v1/auth/verify-email/resend",
    "POST /api/v1/quotes",
    "POST /api/v1/audit/checkpoint/verify",
})
READ_METHODS = frozenset({"GET", "HEAD"})


def rule_for(method: str, path: str) -> Rule | None:
    return RULES.get(f"{method} {path}")


def missing_rules(routes: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{m} {p}" for m, p in routes if rule_for(m, p) is None]


def permits(method: str, path: str, role: Role | None) -> bool:
    """May ``role`` (None: no token) call this declared route? Its rule, and for an
    auditor, the read-only guard."""
    rule = rule_for(method, path)
    if rule is None:
        return False
    if role is Role.AUDITOR and not auditor_may_call(method, path):
        return False
    return allows(rule, role)


def callers(method: str, path: str) -> list[Role]:
    """Every role that may call this declared route (published in /openapi.json)."""
    return [role for role in Role if permits(method, path, role)]


def auditor_may_call(method: str, path: str) -> bool:
    return method in READ_METHODS or f"{method} {path}" in AUDITOR_MAY_CALL


def allows(rule: Rule, role: Role | None) -> bool:
    if rule == PUBLIC:
        return True
    if role is None:
        return False
    return rule == AUTHENTICATED or (isinstance(rule, frozenset) and role in rule)
