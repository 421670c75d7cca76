"""Declared endpoints: one registry feeds the router and the OpenAPI document.

A handler declares its body, query and response models, and the types of its path
parameters; the wrapper parses and validates them (404 for a path parameter of another
type, 400 for malformed JSON, 422 for invalid fields) before the handler runs. The same
declarations write /openapi.json (``midas.http.openapi``), so the two cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from midas.http.problems import Problem, validation_problem

Kind = Literal["command", "query", "system"]
Handler = Callable[..., Awaitable[web.StreamResponse]]
PATH_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# A path parameter is a resource's UUID unless its route declares another type.
DEFAULT_PATH_TYPE: Any = UUID


def path_types(path: str, declared: Mapping[str, Any] | None = None
               ) -> tuple[tuple[str, TypeAdapter[Any]], ...]:
    """Each parameter of ``path`` with the type it must have: as declared, else a UUID.
    Declaring a name the path does not have is a mistake, refused at import."""
    names = PATH_PARAMETER.findall(path)
    if unknown := set(declared or {}) - set(names):
        raise ValueError(f"{path} has no parameter {', '.join(sorted(unknown))}")
    return tuple((name, TypeAdapter((declared or {}).get(name, DEFAULT_PATH_TYPE)))
                 for name in names)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    kind: Kind
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    tags: tuple[str, ...] = ()
    content_type: str = "application/json"
    idempotent: bool = True  # False: bodies or answers hold secrets, never stored
    problems: tuple[tuple[int, str], ...] = ()  # further error answers: (status, when)
    path_params: tuple[tuple[str, TypeAdapter[Any]], ...] = field(default=(), compare=False)
    example: Mapping[str, Any] | None = field(default=None, compare=False)  # a typical body
    # Other types the success may come as (content negotiation), as text.
    also_as: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)


@dataclass
class Api:
    """A group of endpoints (one per module of commands/ or queries/)."""

    tag: str
    kind: Kind
    idempotent: bool = True  # the default of its routes (see Endpoint.idempotent)
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        content_type: str = "application/json",
        idempotent: bool | None = None,
        problems: Mapping[int, str] | None = None,
        path_params: Mapping[str, Any] | None = None,
        example: Mapping[str, Any] | None = None,
        also_as: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a route. ``path_params``: the type of each path parameter that is not
        a UUID (a pydantic type; a value that does not fit is 404). ``example``: a
        typical body, published in the document (and checked against ``body``).
        ``also_as``: other content types of the success (e.g. ``text/csv``)."""
        parameters = path_types(path, path_params)

        def decorate(handler: Handler) -> Handler:
            wrapped = _validating(handler, body, query, parameters)
            self.endpoints.append(
                Endpoint(method, path, wrapped, self.kind, summary, body, query, response,
                         status, (self.tag,), content_type,
                         self.idempotent if idempotent is None else idempotent,
                         tuple((problems or {}).items()), parameters, example, also_as)
            )
            return handler

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, status=kw.pop("status", 201), **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


def _validating(
    handler: Handler, body_model: type[BaseModel] | None, query_model: type[BaseModel] | None,
    parameters: tuple[tuple[str, TypeAdapter[Any]], ...] = (),
) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        check_path(request, parameters)
        kwargs: dict[str, Any] = {}
        if query_model is not None:
            kwargs["query"] = parse_query(request, query_model)
        if body_model is not None:
            kwargs["body"] = await parse_body(request, body_model)
        return await handler(request, **kwargs)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def check_path(request: web.Request, parameters: tuple[tuple[str, TypeAdapter[Any]], ...]
               ) -> None:
    """404 unless every path parameter has its declared type: there is no such resource."""
    for name, adapter in parameters:
        try:
            adapter.validate_python(request.match_info[name])
        except ValidationError:
            raise web.HTTPNotFound() from None


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if request.content_type not in ("application/json", ""):
        raise Problem(415, "Send the request body as application/json.")
    raw = await request.read()
    try:  # parsed and validated in one pass, by pydantic's own JSON parser
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            reason = exc.errors()[0]["msg"].removeprefix("Invalid JSON: ")
            raise Problem(400, f"The body is not valid JSON: {reason}",
                          title="Malformed JSON") from None
        raise validation_problem(exc, "body") from None


def parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None
