"""Error tracking with Sentry (``sentry-sdk`` and its aiohttp integration), when
``MIDAS_SENTRY_DSN`` is set; nothing of it is loaded otherwise.

What reaches Sentry: unexpected errors, as the service logs them at ERROR (an unhandled
error in a request, a failed projection batch, a failed append...), with the request's
method, route, path and request id, and breadcrumbs of the log lines before them. What
never does: request bodies, cookies, query strings, headers other than a few harmless
ones (no Authorization, Cookie, Stripe-Signature, forwarded addresses), the user or their
IP address, local variables; and in every text that remains (exception messages, log
lines, breadcrumbs) emails, tokens, keys and card-like numbers are redacted
(``scrub_event``, the ``before_send`` hook, on top of ``send_default_pii=False``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from midas.config import Settings
from midas.error_reports import REDACTED, scrub, scrub_text

_KEPT_HEADERS = frozenset({"accept", "content-type", "content-length", "x-request-id",
                           "user-agent", "host"})
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_LONG_TOKEN = re.compile(r"(?<![\w-])[A-Za-z0-9_-]{40,}(?![\w-])")  # opaque tokens, keys


class _State:
    owner: object | None = None


_state = _State()


def start(settings: Settings, *, owner: object, release: str | None = None) -> bool:
    """Report to Sentry if a DSN is set (and nobody in this process does yet)."""
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        return False
    if _state.owner is not None:
        return True
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        release=release,
        # The SDK's successor of send_default_pii=False, every category closed: no user,
        # cookies, bodies, query parameters or frame variables; only harmless headers.
        data_collection={
            "user_info": False, "cookies": {"mode": "off"}, "http_bodies": [],
            "http_headers": {"request": {"mode": "allowlist", "terms": sorted(_KEPT_HEADERS)}},
            "url_query_params": {"mode": "off"}, "database_query_data": False,
            "stack_frame_variables": False, "gen_ai": {"inputs": False, "outputs": False},
        },
        include_local_variables=False,
        max_request_body_size="never",
        auto_enabling_integrations=False,  # no query breadcrumbs from database drivers
        integrations=[AioHttpIntegration(transaction_style="method_and_path_pattern"),
                      LoggingIntegration()],
        before_send=scrub_event,  # type: ignore[arg-type]  # Sentry's Event is a TypedDict
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=None,  # traces go to OpenTelemetry (midas.tracing)
    )
    _state.owner = owner
    return True


async def stop(owner: object) -> None:
    """Send what is pending and stop reporting, if ``owner`` started it."""
    if _state.owner is not owner:
        return
    import asyncio

    import sentry_sdk

    _state.owner = None
    client = sentry_sdk.get_client()
    await asyncio.to_thread(client.close, 5.0)  # the transport's last send blocks
    sentry_sdk.get_global_scope().set_client(None)  # a client that records nothing


def app_context(owner: object) -> Any:
    async def context(app: Any) -> Any:
        yield
        await stop(owner)

    return context


# -- scrubbing -----------------------------------------------------------------------------


def scrub_text_deep(text: str) -> str:
    """Secrets (``midas.error_reports.scrub_text``), emails and long opaque tokens redacted."""
    return _LONG_TOKEN.sub(REDACTED, _EMAIL.sub(REDACTED, scrub_text(text)))


def _scrub_value(value: Any) -> Any:
    cleaned = scrub(value)
    if isinstance(cleaned, str):
        return scrub_text_deep(cleaned)
    if isinstance(cleaned, dict):
        return {k: _scrub_value(v) for k, v in cleaned.items()}
    if isinstance(cleaned, list):
        return [_scrub_value(v) for v in cleaned]
    return cleaned


def _request(request: Mapping[str, Any]) -> dict[str, Any]:
    headers = request.get("headers") or {}
    return {
        "method": request.get("method"),
        "url": scrub_text_deep(str(request.get("url") or "").split("?", 1)[0]),
        "headers": {k: scrub_text_deep(str(v)) for k, v in headers.items()
                    if k.lower() in _KEPT_HEADERS},
    }


def scrub_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """Sentry's ``before_send``: the event without personal data or secrets."""
    if "request" in event:
        event["request"] = _request(event["request"])
    event.pop("user", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = scrub_text_deep(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for thread in (event.get("threads") or {}).get("values") or []:
        for frame in (thread.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = scrub_text_deep(logentry[key])
        if "params" in logentry:
            logentry["params"] = _scrub_value(list(logentry["params"] or []))
    if isinstance(event.get("message"), str):
        event["message"] = scrub_text_deep(event["message"])
    for key in ("extra", "tags"):
        if key in event:
            event[key] = _scrub_value(event[key])
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict):
        breadcrumbs["values"] = [scrub_breadcrumb(b) for b in breadcrumbs.get("values") or []]
    return event


def scrub_breadcrumb(crumb: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    if isinstance(crumb.get("message"), str):
        crumb["message"] = scrub_text_deep(crumb["message"])
    if "data" in crumb:
        crumb["data"] = _scrub_value(crumb["data"])
    return crumb
