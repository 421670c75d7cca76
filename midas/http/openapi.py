"""The OpenAPI 3 document, generated from the declared endpoints and the permission matrix.

Nothing here is a second copy: schemas come from the endpoints' pydantic models and path
types (``midas.http.api``), who may call from ``midas.http.permissions``, the error
answers from the rules every request passes (sign-in, roles, validation, the body
limits, conflicts, availability) plus what each route declares (``problems=``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from midas.http.api import PATH_PARAMETER, Endpoint
from midas.http.auth import Role
from midas.http.permissions import PUBLIC, Rule, callers, rule_for
from midas.http.problems import PROBLEM_TYPE, ProblemSchema

_REF = "#/components/schemas/{model}"


def openapi_document(endpoints: Iterable[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    endpoints = list(endpoints)
    models = _models(endpoints)
    _, schemas = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = PATH_PARAMETER.sub(r"{\1}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An access token from POST /api/v1/auth/login (or register,"
                               " refresh, google). Each operation's `x-roles` lists the"
                               " roles that may call it (the permission matrix)."}},
        },
    }


def _models(endpoints: list[Endpoint]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ProblemSchema": ProblemSchema}
    for endpoint in endpoints:
        for model in (endpoint.body, endpoint.response):
            if model is None:
                continue
            if found.setdefault(model.__name__, model) is not model:  # refs are by name
                raise ValueError(f"two request or response models named {model.__name__}")
    return list(found.values())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    rule = rule_for(endpoint.method, endpoint.path)
    roles = [role.value for role in callers(endpoint.method, endpoint.path)]
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": list(endpoint.tags),
        "description": _who(rule, roles) + _doc(endpoint),
        "parameters": _path_parameters(endpoint) + _query_parameters(endpoint.query),
        "responses": _responses(endpoint, roles),
        "security": [{}, {"bearer": []}] if rule == PUBLIC else [{"bearer": []}],
        "x-roles": roles,
    }
    if endpoint.body is not None:
        media: dict[str, Any] = {"schema": _ref(endpoint.body)}
        if endpoint.example is not None:
            media["example"] = dict(endpoint.example)
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    return operation


def _who(rule: Rule | None, roles: list[str]) -> str:
    """Who may call, in words: the same matrix as ``x-roles`` and ``security``."""
    if rule == PUBLIC:
        return "**Who may call:** anyone; no token needed."
    if len(roles) == len(Role):
        return "**Who may call:** any signed-in account (a bearer token)."
    return f"**Who may call (bearer token):** {', '.join(roles)}."


def _doc(endpoint: Endpoint) -> str:
    doc = inspect.cleandoc(endpoint.handler.__doc__ or "")
    return f"\n\n{doc}" if doc else ""


def _responses(endpoint: Endpoint, roles: list[str]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    if endpoint.response is not None:
        success["content"] = {endpoint.content_type: {"schema": _ref(endpoint.response)}}
    elif endpoint.status == 204:
        success["description"] = "Done; no content"
    elif endpoint.content_type != "application/json":
        success["content"] = {endpoint.content_type: {"schema": {"type": "string"}}}
    for content_type in endpoint.also_as:
        success.setdefault("content", {})[content_type] = {"schema": {"type": "string"}}
    if endpoint.status >= 400:  # a route that always refuses (and says why)
        success = _problem(endpoint.summary)
    responses = {str(endpoint.status): success}
    if endpoint.body is not None or endpoint.query is not None:
        responses["400"] = _problem("Malformed request")
        responses["422"] = _problem("Invalid fields")
    if endpoint.body is not None:
        responses["413"] = _problem("The body is too large")
        responses["415"] = _problem("The body is not application/json")
    rule = rule_for(endpoint.method, endpoint.path)
    responses["401"] = _problem("A bearer token was sent but is invalid or expired"
                                if rule == PUBLIC else "Sign in: a valid bearer token is needed",
                                www_authenticate=True)
    if rule != PUBLIC and len(roles) < len(Role):
        responses["403"] = _problem(f"Only for {', '.join(roles)}")
    if endpoint.kind == "command":
        responses["409"] = _problem("Conflicts with the current state")
        responses.setdefault("422", _problem("Refused by a business rule"))
    if endpoint.kind != "system":
        responses["503"] = _problem("Unavailable; retry later", retry_after=True)
    if endpoint.path_params:
        responses["404"] = _problem("No such resource")
    for status, when in endpoint.problems:
        if status == 403 and "403" in responses:  # the handler refuses some more callers
            when = f"{responses['403']['description']}. {when}"
        responses[str(status)] = _problem(when, retry_after=status in (429, 503))
    return dict(sorted(responses.items()))


def _problem(description: str, *, retry_after: bool = False,
             www_authenticate: bool = False) -> dict[str, Any]:
    """An error answer: application/problem+json of the shared Problem schema."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": _ref(ProblemSchema)}},
    }
    headers = {}
    if retry_after:
        headers["Retry-After"] = {"description": "Seconds to wait before trying again",
                                  "schema": {"type": "integer", "minimum": 0}}
    if www_authenticate:
        headers["WWW-Authenticate"] = {"description": "The Bearer scheme, and why",
                                       "schema": {"type": "string"}}
    if headers:
        answer["headers"] = headers
    return answer


def _path_parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    """Each path parameter with the schema of its declared type (``Api.route``)."""
    parameters = []
    for name, adapter in endpoint.path_params:
        schema = adapter.json_schema()
        parameters.append({"name": name, "in": "path", "required": True,
                           "schema": _inlined(schema, schema.pop("$defs", {}))})
    return parameters


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    defs = schema.get("$defs", {})
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _inlined({k: v for k, v in prop.items()
                                if k not in ("title", "description")}, defs),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _inlined(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its references to the model's own definitions (enums) written
    out: two models' enums may share a name, which components could not tell apart."""
    if isinstance(schema, list):
        return [_inlined(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        target = defs[ref.removeprefix("#/$defs/")]
        return _inlined({k: v for k, v in target.items() if k != "title"}, defs)
    return {key: _inlined(value, defs) for key, value in schema.items()}
