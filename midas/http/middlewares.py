"""Request id, access metrics and the mapping of every failure to problem+json."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram

from midas.config import Settings
from midas.domain.errors import DomainError, InvalidState
from midas.eventstore import AggregateNotFound, ConcurrencyConflict, StoreClosed, is_unavailable
from midas.eventstore.codec import InvalidEventData
from midas.http.auth import PRINCIPAL, InvalidToken, Principal, Role, VerifiedTokens
from midas.http.keys import ACCESS
from midas.http.permissions import allows, permits, rule_for
from midas.http.problems import Problem, problem_response, unavailable
from midas.http.requestkeys import REQUEST_ID
from midas.logs import request_id_var

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "midas_http_requests", "HTTP requests served", ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "midas_http_request_seconds", "HTTP request latency", ["method", "route"],
            registry=registry,
        )


def request_id_middleware() -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            request_id_var.reset(token)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    return middleware


def metrics_middleware(metrics: HttpMetrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.requests.labels(request.method, name, str(status)).inc()
            metrics.latency.labels(request.method, name).observe(time.perf_counter() - start)

    return middleware


ErrorHook = Callable[[web.Request, Exception], Awaitable[None]]
RefusalHook = Callable[[web.Request], Awaitable[None]]


def problem_middleware(
    on_error: ErrorHook | None = None, on_refusal: RefusalHook | None = None
) -> Middleware:
    """``on_error`` is told of every unhandled error (500), e.g. to record it;
    ``on_refusal`` of every 403 (a security event)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Problem as problem:
            if problem.status == 403 and on_refusal is not None:
                await on_refusal(request)
            return problem_response(problem, request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 403 and on_refusal is not None:
                await on_refusal(request)
            refused = Problem(exc.status, exc.text if exc.text and exc.status != 404 else None,
                              headers={k: v for k, v in exc.headers.items()
                                       if k in ("Allow", "Retry-After")})
            return problem_response(refused, request)
        except DomainError as exc:
            extra: dict[str, Any] = {"state": exc.state} if isinstance(exc, InvalidState) else {}
            return problem_response(Problem(exc.status, str(exc), **extra), request)
        except AggregateNotFound:
            return problem_response(Problem(404, "No such resource."), request)
        except ConcurrencyConflict:
            return problem_response(
                Problem(409, "The resource changed concurrently; retry the request."), request
            )
        except InvalidEventData as exc:  # the store's second line: nothing was written
            log.warning("unstorable event data refused", extra={"where": exc.path})
            return problem_response(Problem(
                422, "The request holds a value that cannot be stored.",
                title="Invalid request", errors=[{"field": exc.path, "message": exc.reason,
                                                  "type": "unstorable"}]), request)
        except StoreClosed:
            return problem_response(unavailable("The service is shutting down."), request)
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("database unavailable", extra={"error": type(exc).__name__})
                return problem_response(unavailable(), request)
            log.exception("unhandled error")
            if on_error is not None:
                try:
                    await on_error(request, exc)
                except Exception:
                    log.warning("unhandled error not recorded", exc_info=True)
            return problem_response(
                Problem(500, "An unexpected error occurred; it has been logged."), request
            )

    return middleware


def auth_middleware(settings: Settings) -> Middleware:
    """Authenticate the bearer token, then apply the route's rule from the matrix."""
    tokens = VerifiedTokens(settings)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or request.method == "OPTIONS":
            return await handler(request)
        rule = rule_for(request.method, resource.canonical)
        if rule is None:  # unmatched routes (404/405) fall through to aiohttp
            return await handler(request)
        principal = _authenticate(tokens, request)
        if principal is not None:
            await _check_account(request, principal)
            request[PRINCIPAL] = principal
        role = principal.role if principal else None
        if not permits(request.method, resource.canonical, role):
            if principal is None:
                raise Problem(401, "Sign in to do this.",
                              headers={"WWW-Authenticate": 'Bearer realm="midas"'})
            if role is Role.AUDITOR and allows(rule, role):
                raise Problem(403, "An auditor reads; it may not change anything.")
            raise Problem(403, "Your role may not do this.")
        return await handler(request)

    return middleware


def _authenticate(tokens: VerifiedTokens, request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "Use an Authorization: Bearer token.",
                      headers={"WWW-Authenticate": 'Bearer realm="midas"'})
    try:
        return tokens.principal(token.strip())
    except InvalidToken:
        raise Problem(401, "The access token is invalid or expired.",
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None


async def _check_account(request: web.Request, principal: Principal) -> None:
    """Per request (answers cached until any change is announced), so deactivation,
    logout and role changes bind every process at once."""
    access = await request.app[ACCESS].access(principal.account_id, principal.token_id)
    if access is None or not access[1] or access[2] or access[0] != principal.role:
        raise Problem(401, "The access token is no longer valid; sign in again.",
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
