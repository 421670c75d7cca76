"""The error answers /openapi.json declares: what the permission matrix, the rate limits
and the handlers can answer (the fuzz test checks them against real answers)."""

from __future__ import annotations

from midas.app import VERSION, all_endpoints
from midas.http.auth import Role
from midas.http.openapi import openapi_document
from midas.http.permissions import PUBLIC, callers, rule_for

DOCUMENT = openapi_document(all_endpoints(), title="Midas", version=VERSION)


def _operations() -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, operation)
            for path, operations in DOCUMENT["paths"].items()
            for method, operation in operations.items()]


# Open to any signed-in role, yet the handler refuses some (403).
HANDLERS_REFUSING = {("PUT", "/api/v1/accounts/{id}/profile"),
                     ("POST", "/api/v1/accounts/{id}/deactivate"),
                     ("POST", "/api/v1/bookings/{id}/cancel"),
                     ("GET", "/api/v1/bookings/{id}/refund-preview"),
                     ("GET", "/api/v1/accounts/{id}/export")}


def test_every_operation_declares_401_and_role_restricted_ones_403() -> None:
    """403 where the matrix (with the auditors' read-only guard) or the handler refuses a
    signed-in caller; none where every role may call."""
    for method, path, operation in _operations():
        rule = rule_for(method, path)
        assert "401" in operation["responses"], (method, path)
        refusing = rule != PUBLIC and (len(callers(method, path)) < len(Role)
                                       or (method, path) in HANDLERS_REFUSING)
        assert ("403" in operation["responses"]) == refusing, (method, path)
        security = [{}, {"bearer": []}] if rule == PUBLIC else [{"bearer": []}]
        assert operation["security"] == security, (method, path)


def test_rate_limited_and_handler_answers_are_declared() -> None:
    responses = {(m, p): o["responses"] for m, p, o in _operations()}
    for route in [("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"),
                  ("POST", "/api/v1/auth/refresh"), ("POST", "/api/v1/auth/google"),
                  ("POST", "/api/v1/errors"), ("POST", "/api/v1/bookings/{id}/payments")]:
        assert "429" in responses[route], route
    assert "422" in responses[("POST", "/api/v1/calendar/subscriptions/{id}/poll")]
    assert "400" in responses[("POST", "/api/v1/webhooks/stripe")]
    assert {"413", "415"} <= responses[("POST", "/api/v1/items")].keys()
    assert "422" in responses[("POST", "/api/v1/bookings/{id}/confirm")]  # a rule refuses
    assert "429" not in responses[("GET", "/api/v1/items")]


def test_query_parameters_carry_their_enums_inline() -> None:
    """Two models' enums share the name Category: the parameters write theirs out."""
    (items,) = [o for m, p, o in _operations() if (m, p) == ("GET", "/api/v1/items")]
    (errors,) = [o for m, p, o in _operations() if (m, p) == ("GET", "/api/v1/admin/errors")]

    def category(operation: dict) -> list[str]:
        (parameter,) = [p for p in operation["parameters"] if p["name"] == "category"]
        return next(o["enum"] for o in parameter["schema"]["anyOf"] if "enum" in o)

    assert "yacht" in category(items) and "payment" in category(errors)
