"""Typed keys of per-request state set by the middlewares."""

from __future__ import annotations

from aiohttp import web

REQUEST_ID = web.RequestKey("request_id", str)
