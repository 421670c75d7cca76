"""The console's reads go through the public API, over HTTP, as the signed-in caller.

A console fragment is rendered on the server from the answers of ``/api/v1`` routes,
fetched from this very service on the socket the request came in on, with the caller's
own ``Authorization`` header: the same routes, rules and checks as any API client, and no
read of the database that the API would not give that caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from midas.http.middlewares import REQUEST_ID_HEADER

SESSION = web.AppKey("console_session", aiohttp.ClientSession)
FORWARDED = ("Authorization", REQUEST_ID_HEADER)
# Reads that are not of read models (no ``min_position`` parameter): the log, the outbox.
UNPROJECTED = ("/api/v1/admin/errors", "/api/v1/admin/notifications/", "/api/v1/audit/")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def problem(self) -> str:
        """What the API said when it refused, in its own words."""
        if isinstance(self.body, dict):
            return str(self.body.get("detail") or self.body.get("title") or self.status)
        return f"HTTP {self.status}"


class Refused(Exception):
    """The API refused the caller's credentials (401): the console asks to sign in."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.problem)
        self.answer = answer


def own_base_url(request: web.Request) -> str:
    """The address this request reached: the service itself, whatever proxy is in front."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname or not isinstance(sockname, tuple):
        raise web.HTTPServiceUnavailable(text="the console needs a TCP listener")
    host, port = sockname[0], sockname[1]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Api:
    """The public API as the caller of ``request`` sees it."""

    def __init__(self, request: web.Request) -> None:
        self._session = request.app[SESSION]
        self._base = own_base_url(request)
        self._headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        # After a command, the page asks for reads that include its events.
        self._min_position = request.query.get("min_position")

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Answer:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        if self._min_position and not path.startswith(UNPROJECTED):
            query["min_position"] = self._min_position
        async with self._session.get(self._base + path, params=query,
                                     headers=self._headers) as response:
            body = await response.json(content_type=None) if response.content_length != 0 \
                else None
            answer = Answer(response.status, body)
        if answer.status == 401:
            raise Refused(answer)
        return answer

    async def many(self, *calls: tuple[str, Mapping[str, Any] | None]) -> list[Answer]:
        return list(await asyncio.gather(*(self.get(path, params) for path, params in calls)))


async def session_context(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=32, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        app[SESSION] = session
        yield
