"""aiohttp's runner, with connections that answer what they cannot parse as problem+json.

A request aiohttp's parser refuses (a request line or header over ``max_line_size`` /
``max_field_size``, a malformed request) never reaches the application, its middlewares or
its ``on_response_prepare`` signal: the connection's ``RequestHandler.handle_error``
answers it, in plain text and with aiohttp's ``Server`` banner. aiohttp offers no hook for
that answer, so ``AppRunner`` gives its server a ``RequestHandler`` whose ``handle_error``
answers like the rest of the service: problem+json with the headers of
``midas.http.headers``. The refused text is never echoed nor logged (it may hold a
token).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from midas.http.headers import secure
from midas.http.problems import PROBLEM_TYPE

log = logging.getLogger(__name__)


class ProblemRequestHandler(RequestHandler):
    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("the response was started; no error answer can follow")
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
            detail = "An unexpected error occurred; it has been logged."
        else:
            log.info("unreadable request refused",
                     extra={"status": status, "error": type(exc).__name__ if exc else None})
            detail = f"The request could not be read: {_reason(exc)}."
        return problem(status, detail)


def problem(status: int, detail: str) -> web.Response:
    phrase = HTTPStatus(status).phrase
    response = web.json_response(
        {"type": "about:blank", "title": phrase, "status": status, "detail": detail},
        status=status, content_type=PROBLEM_TYPE)
    secure(response.headers)
    response.force_close()
    return response


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long"
    if isinstance(exc, BadHttpMethod):
        return "not an HTTP request"
    return "it is not well-formed HTTP"


class ProblemServer(web.Server):
    """aiohttp's low-level server, its connections handled by ``ProblemRequestHandler``."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)

    @classmethod
    def like(cls, server: web.Server) -> ProblemServer:
        return cls(server.request_handler, request_factory=server.request_factory,
                   handler_cancellation=server.handler_cancellation, **server._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``ProblemServer``."""

    async def _make_server(self) -> web.Server:
        return ProblemServer.like(await super()._make_server())
