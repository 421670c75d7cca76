"""``Idempotency-Key`` on commands: a retry returns the first response, appends nothing.

The key is claimed before the handler runs ("started"); the handler's appends mark it
"committed" in their own transaction; the response is stored afterwards ("done"). So a
retry after a crash between commit and response still appends nothing: it gets the
position the command reached. A key left "started" past ``stale_after`` never committed
and may be taken over; until then a duplicate gets 409 with ``Retry-After`` set to the
whole seconds left before that takeover (at least 1): the wait a request still in progress
may need, and exactly the wait after a crash left the key behind.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from midas.eventstore import Database, Statement, with_statements
from midas.http.api import Endpoint
from midas.http.auth import current_principal
from midas.http.consistency import POSITION_HEADER
from midas.http.keys import DATABASE
from midas.http.problems import Problem

log = logging.getLogger(__name__)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_KEPT_HEADERS = ("Content-Type", POSITION_HEADER, "Location")


@dataclass(frozen=True)
class Claim:
    scope: str
    key: str
    fingerprint: str


def idempotency_middleware(
    endpoints: Iterable[Endpoint], stale_after: timedelta
) -> Middleware:
    opted_out = {e.key for e in endpoints if not e.idempotent}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get(KEY_HEADER)
        if key is None or request.method not in WRITE_METHODS:
            return await handler(request)
        resource = request.match_info.route.resource
        if resource is not None and (request.method, resource.canonical) in opted_out:
            raise Problem(400, f"{KEY_HEADER} is not accepted here: the request carries "
                          "secrets, which are never stored.")
        if not _KEY.match(key):
            raise Problem(400, f"{KEY_HEADER} must be 1-255 visible ASCII characters.")
        db = request.app[DATABASE]
        claim = await _claim_for(request, key)
        async with db.acquire() as conn:
            replay = await _claim(conn, claim, stale_after)
        if replay is not None:
            return replay
        marker = Statement(
            "UPDATE idempotency_keys SET state = 'committed',"
            " position = (SELECT max(position) FROM events) WHERE scope = $1 AND key = $2",
            (claim.scope, claim.key),
        )
        try:
            with with_statements(marker):
                response = await handler(request)
        except BaseException:
            await _release(db, claim)
            raise
        if response.status >= 500 or not isinstance(response, web.Response):
            await _release(db, claim)
            return response
        await _store(db, claim, response)
        return response

    return middleware


async def _claim_for(request: web.Request, key: str) -> Claim:
    principal = current_principal(request)
    who = str(principal.account_id) if principal else "anonymous"
    body = await request.read()
    digest = hashlib.sha256(f"{request.method} {request.path_qs}\n".encode() + body).hexdigest()
    return Claim(f"{who} {request.method} {request.path}", key, digest)


async def _claim(
    conn: asyncpg.Connection, claim: Claim, stale_after: timedelta
) -> web.Response | None:
    """None when this request now owns the key; else the answer to give instead."""
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, state) VALUES ($1,$2,$3,'started')"
        " ON CONFLICT DO NOTHING RETURNING 1",
        claim.scope, claim.key, claim.fingerprint,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "SELECT fingerprint, state, position, status, body, headers, created_at,"
        " now() - created_at > $3 AS stale,"
        " ceil(extract(epoch FROM created_at + $3 - now()))::bigint AS wait_s"
        " FROM idempotency_keys WHERE scope = $1 AND key = $2",
        claim.scope, claim.key, stale_after,
    )
    if row is None:  # released meanwhile: try once more
        return await _claim(conn, claim, stale_after)
    if row["fingerprint"] != claim.fingerprint:
        raise Problem(422, f"This {KEY_HEADER} was used for a different request.",
                      title="Idempotency key reused")
    if row["state"] == "done":
        headers = {**orjson.loads(row["headers"]), REPLAYED_HEADER: "true"}
        return web.Response(status=row["status"], text=row["body"], headers=headers)
    if row["state"] == "committed":
        position = row["position"]
        return web.json_response(
            {"position": position, "replayed": True},
            headers={POSITION_HEADER: str(position), REPLAYED_HEADER: "true"},
        )
    if row["stale"] and await conn.fetchval(
        "UPDATE idempotency_keys SET created_at = now() WHERE scope = $1 AND key = $2"
        " AND state = 'started' AND created_at = $3 RETURNING 1",
        claim.scope, claim.key, row["created_at"],
    ):
        return None
    raise Problem(409, "A request with this Idempotency-Key is still in progress.",
                  headers={"Retry-After": str(max(1, row["wait_s"]))})


async def _store(db: Database, claim: Claim, response: web.Response) -> None:
    headers = {h: response.headers[h] for h in _KEPT_HEADERS if h in response.headers}
    body = response.text if response.body is not None else ""
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET state = 'done', status = $3, body = $4, headers = $5"
            " WHERE scope = $1 AND key = $2",
            claim.scope, claim.key, response.status, body, orjson.dumps(headers).decode(),
        )


async def _release(db: Database, claim: Claim) -> None:
    """Let the client retry a command that failed before it committed.

    If even this fails (database gone), the key stays "started" and is taken over once
    stale.
    """
    try:
        async with db.acquire() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2"
                " AND state = 'started'",
                claim.scope, claim.key,
            )
    except Exception:
        log.warning("idempotency key not released", exc_info=True)
