"""Errors as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from midas import tracing
from midas.http.requestkeys import REQUEST_ID
from midas.limits import refused_character

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answer: raise it anywhere in a handler."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class ProblemSchema(BaseModel):
    """The shape of every error answer."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(problem: Problem, request: web.Request | None = None) -> web.Response:
    body = problem.body(request.path if request is not None else None)
    if request is not None and REQUEST_ID in request:
        body["request_id"] = request[REQUEST_ID]
    trace_id = tracing.current_trace_id()  # None unless the process traces
    if trace_id is not None:
        body["trace_id"] = trace_id
    return web.json_response(
        body, status=problem.status, content_type=PROBLEM_TYPE, headers=problem.headers
    )


def validation_problem(exc: ValidationError, where: str) -> Problem:
    """422 listing each offending field (never echoing the submitted values)."""
    errors = [
        {
            "field": ".".join(_printable(str(part)) for part in (where, *err["loc"])),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return Problem(
        422, "The request has invalid fields.", title="Invalid request", errors=errors
    )


def _printable(name: str) -> str:
    """A field name as it can be shown: a key holding control characters is escaped."""
    return name if refused_character(name) is None else ascii(name)[1:-1]


def unavailable(
    detail: str = "The database is unreachable; try again shortly.", **extra: Any
) -> Problem:
    """503 for a connection-level failure (``midas.eventstore.is_unavailable``): the pool
    reconnects on the next request, so a client may retry after a second."""
    return Problem(503, detail, headers={"Retry-After": "1"}, **extra)
