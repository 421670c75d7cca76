"""A local stand-in for PayPal at its HTTP boundary: the IPN verify endpoint (answers
VERIFIED or INVALID), and the REST calls a refund makes (an OAuth2 client-credentials
token, then `POST /v2/payments/captures/{id}/refund`, idempotent on `PayPal-Request-Id`)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

CLIENT_ID, CLIENT_SECRET = "paypal-client-midas", "paypal-secret-for-tests"


@dataclass
class FakePayPal:
    answer: str = "VERIFIED"
    received: list[bytes] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, answers wait until it is set
    refunds: list[dict[str, Any]] = field(default_factory=list)  # distinct refunds made
    refund_calls: list[dict[str, Any]] = field(default_factory=list)  # every call
    fail_refunds: int = 0  # answer this many refund calls with 503
    refuse_refunds: str | None = None  # answer refund calls 422 with this issue
    tokens_issued: int = 0
    _by_request_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cgi-bin/webscr", self._verify)
        app.router.add_post("/v1/oauth2/token", self._token)
        app.router.add_post("/v2/payments/captures/{id}/refund", self._refund)
        return app

    async def _verify(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(body)
        if self.gate is not None:
            await self.gate.wait()
        if not body.startswith(b"cmd=_notify-validate&"):
            return web.Response(text="INVALID")
        return web.Response(text=self.answer)

    async def _token(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != f"Basic {expected}" or form.get(
                "grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        self.tokens_issued += 1
        return web.json_response({"access_token": f"A21AA-token-{self.tokens_issued}",
                                  "token_type": "Bearer", "expires_in": 32400})

    async def _refund(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer A21AA-token-"):
            return web.json_response({"name": "AUTHENTICATION_FAILURE"}, status=401)
        body = await request.json()
        request_id = request.headers.get("PayPal-Request-Id")
        call = {"capture": request.match_info["id"], "request_id": request_id, **body}
        self.refund_calls.append(call)
        if self.fail_refunds > 0:
            self.fail_refunds -= 1
            return web.json_response({"name": "INTERNAL_SERVER_ERROR"}, status=503)
        if self.refuse_refunds:
            return web.json_response({"name": "UNPROCESSABLE_ENTITY", "details": [
                {"issue": self.refuse_refunds}]}, status=422)
        if request_id and request_id in self._by_request_id:
            return web.json_response(self._by_request_id[request_id], status=200)
        refund = {"id": f"RF{next(self._ids):014d}", "status": "COMPLETED",
                  "amount": {"value": str(Decimal(body["amount"]["value"])),
                             "currency_code": body["amount"]["currency_code"]},
                  "invoice_id": body.get("invoice_id"), "capture": call["capture"]}
        self.refunds.append(refund)
        if request_id:
            self._by_request_id[request_id] = refund
        return web.json_response(refund, status=201)
