"""Error reporting: client apps report their errors; server 500s are recorded.

``POST /api/v1/errors`` is open to anonymous callers (an app may fail before sign-in) within
a per-IP rate limit, and to any token within a per-account one. Contexts are scrubbed of
secrets before anything is stored. What a client claims (category, severity, amount at
risk) is recorded but not trusted: client reports count only towards their own threshold
(``midas.error_reports``), so no client can page anyone on its own; the service's own errors
count towards the thresholds per category.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from midas.error_reports import CLIENT, SERVER, Category, ErrorReport, Severity, record_error
from midas.http.api import Api
from midas.http.auth import current_principal
from midas.http.fields import Amount, FreeText, JsonObject, Line
from midas.http.keys import CLOCK, DATABASE, LIMITER, SETTINGS
from midas.http.ratelimit import RATE_LIMITED, client_ip, enforce
from midas.http.requestkeys import REQUEST_ID

api = Api(tag="errors", kind="command", idempotent=False)  # bodies may carry secrets


class ClientError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    severity: Severity = Severity.MEDIUM
    message: FreeText = Field(min_length=1, max_length=2000)
    request_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$",
                                   description="The failing request's X-Request-Id, if any.")
    app: Line | None = Field(None, max_length=100, description="Which client app, version.")
    context: JsonObject = Field(default_factory=dict,
                                description="Free context; secret-looking keys are dropped.")
    amount_at_risk: Amount | None = Field(None, description="Minor units (business impact).")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class Reported(BaseModel):
    id: int


@api.post("/api/v1/errors", summary="Report a client app's error (scrubbed of secrets)",
          body=ClientError, response=Reported, problems=RATE_LIMITED)
async def post_error(request: web.Request, body: ClientError) -> web.Response:
    app, settings = request.app, request.app[SETTINGS]
    principal = current_principal(request)
    caller = (f"account:{principal.account_id}" if principal is not None
              else f"ip:{client_ip(request, settings)}")
    await enforce(app[LIMITER], f"errors:{caller}", settings.client_error_rate_limit, 60,
                  "error reports")
    context = dict(body.context)
    if body.app:
        context["app"] = body.app
    recorded = await record_error(app[DATABASE], settings, ErrorReport(
        category=body.category, severity=body.severity, message=body.message, source=CLIENT,
        request_id=body.request_id or request.get(REQUEST_ID),
        account_id=principal.account_id if principal else None, context=context,
        amount_at_risk=body.amount_at_risk, currency=body.currency,
    ), app[CLOCK]())
    return web.json_response({"id": recorded.id}, status=201)


_ROUTE_CATEGORIES = (("/payments", Category.PAYMENT), ("/webhooks", Category.PAYMENT),
                     ("/bookings", Category.BOOKING), ("/auth", Category.AUTHENTICATION),
                     ("/calendar", Category.INTEGRATION))


def category_of(path: str) -> Category:
    for part, category in _ROUTE_CATEGORIES:
        if part in path:
            return category
    return Category.SYSTEM


async def record_server_error(request: web.Request, exc: Exception) -> None:
    """problem_middleware's hook: every unhandled error (a 500) is a high-severity report."""
    app = request.app
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    principal = current_principal(request)
    await record_error(app[DATABASE], app[SETTINGS], ErrorReport(
        category=category_of(route), severity=Severity.HIGH,
        message=f"{type(exc).__name__} in {request.method} {route}", source=SERVER,
        request_id=request.get(REQUEST_ID),
        account_id=principal.account_id if principal else None,
        context={"method": request.method, "route": route, "exception": type(exc).__name__},
    ), app[CLOCK]())
