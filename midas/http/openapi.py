"""The OpenAPI 3 document, generated from the declared endpoints' pydantic models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from midas.http.api import Endpoint
from midas.http.problems import PROBLEM_TYPE, ProblemSchema

_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_REF = "#/components/schemas/{model}"


def openapi_document(endpoints: Iterable[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    endpoints = list(endpoints)
    models = _models(endpoints)
    _, schemas = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = _PARAM.sub(r"{\1}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _models(endpoints: list[Endpoint]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ProblemSchema": ProblemSchema}
    for endpoint in endpoints:
        for model in (endpoint.body, endpoint.response):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": list(endpoint.tags),
        "parameters": _path_parameters(endpoint.path) + _query_parameters(endpoint.query),
        "responses": _responses(endpoint),
    }
    if endpoint.handler.__doc__:
        operation["description"] = endpoint.handler.__doc__.strip()
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(endpoint.body)}},
        }
    return operation


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    if endpoint.response is not None:
        success["content"] = {endpoint.content_type: {"schema": _ref(endpoint.response)}}
    elif endpoint.content_type != "application/json":
        success["content"] = {endpoint.content_type: {"schema": {"type": "string"}}}
    problem = {"content": {PROBLEM_TYPE: {"schema": _ref(ProblemSchema)}}}
    responses = {str(endpoint.status): success}
    if endpoint.body is not None or endpoint.query is not None:
        responses["400"] = {"description": "Malformed request", **problem}
        responses["422"] = {"description": "Invalid fields", **problem}
    if endpoint.kind == "command":
        responses["409"] = {"description": "Conflicts with the current state", **problem}
    if endpoint.kind != "system":
        responses["503"] = {"description": "Unavailable; retry later", **problem}
    if "{" in endpoint.path:
        responses["404"] = {"description": "No such resource", **problem}
    return responses


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(path)
    ]


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]
