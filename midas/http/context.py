"""What a command records about who asked and why (event metadata)."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from aiohttp import web

from midas.http.auth import PRINCIPAL
from midas.http.requestkeys import REQUEST_ID
from midas.limits import BIGINT_MAX

CORRELATION_HEADER = "X-Correlation-Id"
CAUSATION_HEADER = "X-Causation-Id"
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_DIGITS = re.compile(r"[0-9]{1,19}")


def command_metadata(request: web.Request) -> dict[str, Any]:
    """Correlation id, causation id, actor and request id for the events of a command."""
    request_id = request.get(REQUEST_ID)
    principal = request.get(PRINCIPAL)
    correlation = request.headers.get(CORRELATION_HEADER, "")
    causation = request.headers.get(CAUSATION_HEADER, "")
    return {
        "request_id": request_id,
        "correlation_id": correlation if _ID.match(correlation) else request_id,
        "causation_id": causation if _ID.match(causation) else request_id,
        "actor": str(principal.account_id) if principal else "anonymous",
        "actor_role": principal.role.value if principal else None,
    }


def path_row_id(request: web.Request, name: str = "id") -> int:
    """A bigserial id in the path: ASCII digits from 1 to the bigint maximum; anything
    else (``¹``, ``٣``, ``0``, 2**63) is 404."""
    raw = request.match_info[name]
    if not _DIGITS.fullmatch(raw) or not 1 <= (value := int(raw)) <= BIGINT_MAX:
        raise web.HTTPNotFound()
    return value


def path_uuid(request: web.Request, name: str = "id") -> UUID:
    """A UUID path parameter; anything else is 404 (there is no such resource)."""
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound() from None
