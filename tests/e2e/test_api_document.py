"""The API document against the running service: who may call each operation (its
``x-roles`` and ``security``) is who the service lets through, path parameters of another
type are 404, and the docs page (Swagger UI) is served whole from this service."""

from __future__ import annotations

import re
import uuid
from typing import Any

from midas.config import Settings
from midas.http.auth import Role, issue_access_token

_PARAM = re.compile(r"\{[^}]+\}")
# The permission middleware's refusals (a handler's own 403s say something else).
REFUSED = {"Your role may not do this.", "An auditor reads; it may not change anything."}
ASSETS = {"/docs/swagger-ui.css": "text/css", "/docs/swagger-ui-bundle.js": "text/javascript",
          "/docs/swagger-initializer.js": "text/javascript"}


def _example_path(path: str, operation: dict[str, Any]) -> str:
    """The path with a value of each parameter's type (an unknown resource)."""
    schemas = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "path"}

    def value(match: re.Match[str]) -> str:
        schema = schemas[match.group(0)[1:-1]]
        if "enum" in schema:
            return schema["enum"][0]
        if schema.get("type") == "integer":
            return "987654321"
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        return {"^[a-z][a-z0-9_]{0,62}$": "no_such_model"}.get(
            schema["pattern"], str(uuid.uuid4()) + ".gif" if "gif" in schema["pattern"]
            else "A" * 59)

    return _PARAM.sub(value, path)


async def test_the_service_lets_through_exactly_the_roles_the_document_names(
        service: Any, auth: Any, settings: Settings) -> None:
    """Every operation, called by every role and anonymously: refused by the permission
    check (401 without a token, 403 with one) exactly when the document says so."""
    app_client = await service(paypal_verify_url="http://127.0.0.1:9/cgi-bin/webscr",
                               email_delivery_enabled=False, calendar_poller_enabled=False)
    document = await (await app_client.get("/openapi.json")).json()
    accounts = {role: uuid.uuid4() for role in Role}
    for role, account in accounts.items():
        auth(role.value, account)  # its sign-in row

    def token(role: Role) -> dict[str, str]:
        """A fresh token per call: a call may log out, which revokes the token it sent."""
        return {"Authorization": "Bearer "
                + issue_access_token(settings, accounts[role], role)}

    mismatches = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            url = _example_path(path, operation)
            public = {} in operation["security"]
            for role in [None, *Role]:
                response = await app_client.request(
                    method.upper(), url, headers=token(role) if role else {},
                    json=None if method in ("get", "delete") else {})
                body = await response.read()
                detail = (await response.json()).get("detail") if body and \
                    response.content_type == "application/problem+json" else None
                if role is None:
                    refused = response.status == 401 and detail == "Sign in to do this."
                    expected = not public
                else:
                    refused = response.status == 403 and detail in REFUSED
                    expected = role.value not in operation["x-roles"]
                if refused != expected:
                    mismatches.append((method, path, role, response.status, detail))
    assert mismatches == []


async def test_a_path_parameter_of_another_type_is_404(app_client: Any, auth: Any) -> None:
    admin = auth("super_admin")
    answers = {
        "not a uuid": await app_client.get("/api/v1/bookings/not-a-uuid", headers=admin),
        "not a location": await app_client.put("/api/v1/pricing/locations/XX-XX/tax-rate",
                                               json={"rate": "0.05"}, headers=admin),
        "not a segment": await app_client.post(
            "/api/v1/customers/segments/everyone/messages",
            json={"subject": "Hi", "body": "Hello"}, headers=admin),
        "not a row id": await app_client.post(
            "/api/v1/admin/notifications/outbox/0/retry", headers=admin),
    }
    assert {what: a.status for what, a in answers.items()} == dict.fromkeys(answers, 404)
    assert {a.content_type for a in answers.values()} == {"application/problem+json"}
    known = await app_client.put("/api/v1/pricing/locations/US-CA/tax-rate",
                                 json={"rate": "0.05"}, headers=admin)
    assert known.status == 200  # the declared type lets a real value through


async def test_the_docs_page_is_swagger_ui_served_from_this_service(app_client: Any) -> None:
    response = await app_client.get("/docs")
    page = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert re.findall(r"https?://", page) == []  # no other host, not even a link
    referenced = set(re.findall(r'(?:src|href)="(/docs/[^"]+)"', page))
    assert referenced == set(ASSETS)
    for path, content_type in ASSETS.items():
        asset = await app_client.get(path)
        assert (asset.status, asset.content_type) == (200, content_type), path
        assert len(await asset.read()) > 0
    initializer = await (await app_client.get("/docs/swagger-initializer.js")).text()
    assert 'url: "/openapi.json"' in initializer
    assert "persistAuthorization: true" in initializer  # "Authorize" kept across reloads
    assert "validatorUrl: null" in initializer  # nothing sent to an outside validator
    bundle = await (await app_client.get("/docs/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle and "persistAuthorization" in bundle
    assert (await app_client.get("/docs/swagger-ui.js")).status == 404  # only those three
