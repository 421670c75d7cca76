"""Every field a client sends has a published bound: text a pattern (or an enum or format),
integers a minimum and a maximum that fit a bigint, free-form objects rules for their keys.

Checked on /openapi.json itself, so a new command or query model cannot ship a plain
``str`` or ``int`` field (see midas.http.fields and docs/security.md, "Hostile input")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from midas.app import VERSION, all_endpoints
from midas.http.openapi import openapi_document
from midas.limits import BIGINT_MAX, BIGINT_MIN, FREE_TEXT_PATTERN, LINE_PATTERN

DOCUMENT = openapi_document(all_endpoints(), title="Midas", version=VERSION)
SCHEMAS = DOCUMENT["components"]["schemas"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return SCHEMAS[ref.rsplit("/", 1)[-1]] if ref else schema


def _leaves(schema: dict[str, Any], where: str, seen: frozenset[str]) -> Iterator[
        tuple[str, dict[str, Any]]]:
    """Every schema reachable from ``schema`` with the path that leads to it."""
    ref = schema.get("$ref")
    if ref:
        if ref in seen:
            return
        seen = seen | {ref}
    schema = _resolve(schema)
    yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(key, [])):
            yield from _leaves(option, f"{where}|{index}", seen)
    for name, prop in schema.get("properties", {}).items():
        yield from _leaves(prop, f"{where}.{name}", seen)
    for pattern, prop in schema.get("patternProperties", {}).items():
        yield from _leaves(prop, f"{where}.<{pattern}>", seen)
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), dict):
            yield from _leaves(schema[key], f"{where}.{key}", seen)


def _request_schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            for parameter in operation["parameters"]:
                if parameter["in"] == "query":
                    yield f"{name} query.{parameter['name']}", parameter["schema"]
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                yield f"{name} body", media["schema"]


def _is_decimal(schema: dict[str, Any]) -> bool:
    """pydantic's Decimal, alone or in a union: a number, or a string read as one (and
    refused otherwise)."""
    return any(option.get("type") == "number" for option in schema.get("anyOf", []))


def _violations() -> Iterator[str]:
    for name, root in _request_schemas():
        decimal_strings: set[str] = set()
        for where, schema in _leaves(root, name, frozenset()):
            if _is_decimal(schema):
                decimal_strings.update(f"{where}|{i}" for i, o in enumerate(schema["anyOf"])
                                       if o.get("type") == "string" and "pattern" not in o)
            kind = schema.get("type")
            if kind == "string" and where not in decimal_strings and not (
                    {"pattern", "enum", "format", "const"} & schema.keys()):
                yield f"{where}: text without a pattern"
            if kind == "integer" and "enum" not in schema and "const" not in schema:
                low = schema.get("minimum", schema.get("exclusiveMinimum"))
                high = schema.get("maximum", schema.get("exclusiveMaximum"))
                if low is None or high is None or low < BIGINT_MIN or high > BIGINT_MAX:
                    yield f"{where}: integer without bounds within bigint"
            if kind == "object" and "properties" not in schema and not (
                    {"patternProperties", "propertyNames"} & schema.keys()):
                yield f"{where}: object without rules for its keys"


def test_every_request_field_publishes_its_bound() -> None:
    assert list(_violations()) == []


@pytest.mark.parametrize(("field", "pattern"), [
    ("RegisterItem.name", LINE_PATTERN),
    ("AddNote.text", FREE_TEXT_PATTERN),
    ("SegmentMessage.subject", LINE_PATTERN),
    ("SegmentMessage.body", FREE_TEXT_PATTERN),
])
def test_one_line_and_free_text_publish_their_patterns(field: str, pattern: str) -> None:
    model, name = field.split(".")
    assert SCHEMAS[model]["properties"][name]["pattern"] == pattern


def test_the_guard_sees_a_plain_field() -> None:
    from pydantic import BaseModel

    from midas.http.api import Api

    class Loose(BaseModel):
        note: str
        count: int

    api = Api(tag="t", kind="command")

    @api.post("/loose", summary="loose", body=Loose)
    async def loose(request: Any, body: Loose) -> Any:  # pragma: no cover
        raise AssertionError

    document = openapi_document(api.endpoints, title="t", version="0")
    schema = document["components"]["schemas"]["Loose"]
    found = {where.rsplit(".", 1)[-1] for where, s in _leaves(schema, "Loose", frozenset())
             if s.get("type") in ("string", "integer") and not (
                 {"pattern", "maximum"} & s.keys())}
    assert found == {"note", "count"}
