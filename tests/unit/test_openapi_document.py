"""/openapi.json is complete and true to the code: valid OpenAPI, who may call each
operation as the permission matrix says, every parameter and answer with its schema, and
examples that the handlers' own models accept."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from midas.app import VERSION, all_endpoints
from midas.http.api import PATH_PARAMETER, Endpoint
from midas.http.auth import Role
from midas.http.openapi import openapi_document
from midas.http.permissions import AUDITOR_MAY_CALL, AUTHENTICATED, PUBLIC, RULES

ENDPOINTS = all_endpoints()
DOCUMENT = openapi_document(ENDPOINTS, title="Midas", version=VERSION)
EVERY_ROLE = {role.value for role in Role}
PROBLEM_REF = "#/components/schemas/ProblemSchema"


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    return DOCUMENT["paths"][PATH_PARAMETER.sub(r"{\1}", endpoint.path)][endpoint.method.lower()]


def _matrix_roles(method: str, path: str) -> set[str]:
    """Who may call, read straight from the matrix's rules (not through ``permits``)."""
    rule = RULES[f"{method} {path}"]
    roles = EVERY_ROLE if rule in (PUBLIC, AUTHENTICATED) else {r.value for r in rule}
    if method not in ("GET", "HEAD") and f"{method} {path}" not in AUDITOR_MAY_CALL:
        roles = roles - {Role.AUDITOR.value}
    return roles


def test_the_document_is_valid_openapi() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


def test_the_validator_catches_a_broken_document() -> None:
    """The check above can fail: an operation without its answers is refused."""
    broken = {**DOCUMENT, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(Exception, match="description"):
        validate(broken)


def test_every_route_is_documented_once() -> None:
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    assert documented == {(e.method, PATH_PARAMETER.sub(r"{\1}", e.path)) for e in ENDPOINTS}
    assert len(ENDPOINTS) == len(documented) > 100


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_security_and_roles_are_the_permission_matrix(endpoint: Endpoint) -> None:
    operation = _operation(endpoint)
    roles = _matrix_roles(endpoint.method, endpoint.path)
    assert set(operation["x-roles"]) == roles
    public = RULES[f"{endpoint.method} {endpoint.path}"] == PUBLIC
    assert operation["security"] == ([{}, {"bearer": []}] if public else [{"bearer": []}])
    assert ("anyone; no token needed" in operation["description"]) == public
    responses = operation["responses"]
    assert "401" in responses
    if not public and roles != EVERY_ROLE:
        assert "403" in responses
        assert all(role in responses["403"]["description"] for role in roles)


def test_the_bearer_scheme_is_declared() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_an_auditor_reads_but_changes_nothing() -> None:
    """Spot checks of the matrix as published (the read-only guard included)."""
    roles = {(m.upper(), p): set(o["x-roles"])
             for p, ops in DOCUMENT["paths"].items() for m, o in ops.items()}
    assert roles[("POST", "/api/v1/items")] == {"admin", "super_admin"}
    assert roles[("POST", "/api/v1/bookings")] == EVERY_ROLE - {"auditor"}
    assert roles[("GET", "/api/v1/bookings")] == EVERY_ROLE
    assert roles[("GET", "/api/v1/audit/events")] == {"auditor", "super_admin"}
    assert roles[("POST", "/api/v1/quotes")] == EVERY_ROLE  # computes, stores nothing


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_path_parameter_has_its_schema(endpoint: Endpoint) -> None:
    parameters = {p["name"]: p for p in _operation(endpoint)["parameters"] if p["in"] == "path"}
    assert set(parameters) == set(PATH_PARAMETER.findall(endpoint.path))
    for parameter in parameters.values():
        assert parameter["required"] is True
        schema = parameter["schema"]
        assert schema.get("format") == "uuid" or {"enum", "pattern", "maximum"} & schema.keys()
    if parameters:
        assert "404" in _operation(endpoint)["responses"]


def test_path_parameters_that_are_not_uuids_publish_their_own_type() -> None:
    def schema(path: str, method: str, name: str) -> dict[str, Any]:
        (parameter,) = [p for p in DOCUMENT["paths"][path][method]["parameters"]
                        if p["name"] == name]
        return parameter["schema"]

    assert schema("/api/v1/pricing/locations/{code}/seasons", "put", "code") == {
        "type": "string", "pattern": "^[A-Z]{2}-[A-Z]{2}$"}  # locations are data
    assert "vip" in schema("/api/v1/customers/segments/{segment}/messages", "post",
                           "segment")["enum"]
    assert schema("/api/v1/admin/notifications/outbox/{id}/retry", "post", "id") == {
        "type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert schema("/api/v1/bookings/{id}", "get", "id") == {"type": "string", "format": "uuid"}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_query_parameter_is_the_query_model(endpoint: Endpoint) -> None:
    parameters = {p["name"]: p for p in _operation(endpoint)["parameters"] if p["in"] == "query"}
    if endpoint.query is None:
        assert parameters == {}
        return
    fields = {field.alias or name: field for name, field in endpoint.query.model_fields.items()}
    assert set(parameters) == set(fields)
    for name, field in fields.items():
        assert parameters[name]["required"] == field.is_required(), name
        assert parameters[name]["schema"], name


def test_required_query_parameters_are_marked_required() -> None:
    parameters = {p["name"]: p for p in
                  DOCUMENT["paths"]["/api/v1/reports/financial"]["get"]["parameters"]}
    assert parameters["from"]["required"] and parameters["to"]["required"]
    assert parameters["from"]["schema"]["format"] == "date"
    assert not parameters["group"]["required"]


# Successes without a body: 204, and PayPal's IPN (answered empty at once).
EMPTY = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/webhooks/paypal")}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_answer_has_its_schema(endpoint: Endpoint) -> None:
    responses = _operation(endpoint)["responses"]
    successes = [status for status in responses if status.startswith("2")]
    if endpoint.status >= 400:  # a route that always refuses
        assert successes == [] and responses[str(endpoint.status)]["content"]
    else:
        assert successes == [str(endpoint.status)]
        content = responses[successes[0]].get("content")
        assert (content is None) == (endpoint.key in EMPTY)
        for media in (content or {}).values():
            assert media["schema"].get("$ref") or media["schema"].get("type") == "string"
    for status, answer in responses.items():
        if int(status) >= 400:
            assert answer["content"] == {"application/problem+json": {
                "schema": {"$ref": PROBLEM_REF}}}, status
    if endpoint.kind != "system":
        assert "Retry-After" in responses["503"]["headers"]
    if endpoint.body is not None or endpoint.query is not None:
        assert "422" in responses and "400" in responses


def test_the_shared_problem_schema() -> None:
    problem = DOCUMENT["components"]["schemas"]["ProblemSchema"]
    assert set(problem["required"]) == {"type", "title", "status"}
    assert {"detail", "errors", "request_id"} <= problem["properties"].keys()


MAIN_COMMANDS = [("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"),
                 ("POST", "/api/v1/items"), ("POST", "/api/v1/quotes"),
                 ("POST", "/api/v1/bookings"), ("POST", "/api/v1/bookings/{id}/payments/confirm"),
                 ("POST", "/api/v1/bookings/{id}/cancel")]


def test_the_main_commands_have_examples() -> None:
    with_examples = {e.key for e in ENDPOINTS if e.example is not None}
    assert set(MAIN_COMMANDS) <= with_examples


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.example is not None],
                         ids=lambda e: f"{e.method} {e.path}")
def test_every_example_is_accepted_by_its_model(endpoint: Endpoint) -> None:
    assert endpoint.body is not None
    endpoint.body.model_validate(endpoint.example)
    media = _operation(endpoint)["requestBody"]["content"]["application/json"]
    assert media["example"] == endpoint.example


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        own = {value["$ref"]} if "$ref" in value else set()
        return own.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def test_every_reference_resolves_to_its_model() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert {ref.rsplit("/", 1)[-1] for ref in _refs(DOCUMENT)} <= schemas.keys()
    for endpoint in ENDPOINTS:
        for model in (endpoint.body, endpoint.response):
            if model is not None:
                assert schemas[model.__name__]["title"] == model.__name__


def test_two_models_of_one_name_are_refused() -> None:
    """Operations refer to their models by name: a second model of that name is an error,
    not a silent swap."""
    from pydantic import BaseModel

    from midas.http.api import Api

    api = Api(tag="t", kind="query")
    for path in ("/a", "/b"):
        class Answer(BaseModel):
            value: int

        @api.get(path, summary=path, response=Answer)
        async def handler(request: Any) -> Any:  # pragma: no cover
            raise AssertionError

    with pytest.raises(ValueError, match="two request or response models named Answer"):
        openapi_document(api.endpoints, title="t", version="0")
