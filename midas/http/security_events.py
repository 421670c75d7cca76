"""Security events recorded from a request: its route, client address, request id and
the caller (``midas.security.events`` keeps them; a failure to record never changes the
answer)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from midas.http.auth import current_principal
from midas.http.keys import CLOCK, DATABASE, SETTINGS
from midas.http.ratelimit import client_ip
from midas.http.requestkeys import REQUEST_ID
from midas.security.events import Kind, SecurityEvent, record_quietly


async def record_for(request: web.Request, kind: Kind, *, account_id: UUID | None = None,
                     subject: str | None = None, actor: str | None = None,
                     **detail: Any) -> None:
    app, settings = request.app, request.app[SETTINGS]
    resource = request.match_info.route.resource
    principal = current_principal(request)
    if actor is None:
        actor = str(principal.account_id) if principal is not None else "anonymous"
    await record_quietly(app[DATABASE], settings, SecurityEvent(
        kind, account_id=account_id, subject=subject, actor=actor,
        client_ip=client_ip(request, settings),
        route=f"{request.method} {resource.canonical if resource else request.path}",
        request_id=request.get(REQUEST_ID), detail=detail), app[CLOCK]())


async def permission_refused(request: web.Request) -> None:
    """problem_middleware's hook for every 403: who was refused what."""
    principal = current_principal(request)
    await record_for(request, Kind.PERMISSION_REFUSED,
                     account_id=principal.account_id if principal else None,
                     role=principal.role.value if principal else None)
