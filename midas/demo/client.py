"""The demo's HTTP client: the service's own routes, called as any client calls them."""

from __future__ import annotations

from typing import Any

import aiohttp


class DemoError(RuntimeError):
    """The demo could not go on (the message says what was refused, and why)."""


class Client:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def call(self, method: str, path: str, token: str | None = None, *,
                   json: Any = None, ok: tuple[int, ...] = (200, 201, 202)
                   ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body); a status outside `ok` stops the demo with the problem."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._session.request(method, path, json=json, headers=headers) as answer:
            body = await answer.json(content_type=None) if answer.content_length != 0 else {}
            if answer.status not in ok:
                detail = body.get("detail") if isinstance(body, dict) else None
                raise DemoError(f"{method} {path} answered {answer.status}: {detail}")
            return answer.status, body if isinstance(body, dict) else {"items": body}

    async def post_raw(self, path: str, payload: bytes, headers: dict[str, str]
                       ) -> dict[str, Any]:
        async with self._session.post(path, data=payload, headers=headers) as answer:
            if answer.status != 200:
                raise DemoError(f"POST {path} answered {answer.status}")
            return dict(await answer.json())
