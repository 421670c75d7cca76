"""A local stand-in for the Stripe endpoints the service calls, with Stripe-shaped JSON.

It records every call with its Idempotency-Key, honours keys (same key: same object, no
second charge) and fails on demand. Also signs webhook bodies with Stripe's real scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from aiohttp import web

WEBHOOK_SECRET = "whsec_test_secret_for_midas"
API_KEY = "sk_test_midas_fake"
PAYPAL_RECEIVER = "payments@midas.test"


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> str:
    return json.dumps({
        "id": event_id or f"evt_{kind.replace('.', '_')}_{obj.get('id')}",
        "object": "event", "type": kind, "created": int(time.time()), "livemode": False,
        "api_version": "2024-06-20", "data": {"object": obj},
    })


@dataclass
class Call:
    method: str
    path: str
    key: str | None
    params: dict[str, str]


@dataclass
class FakeStripe:
    calls: list[Call] = field(default_factory=list)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_key: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)  # path fragment -> failures left
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def keys(self, fragment: str = "") -> list[str | None]:
        return [c.key for c in self.calls if fragment in c.path]

    def charges(self) -> list[dict[str, Any]]:
        """Distinct intents created (what the card was actually asked for)."""
        return list(self.intents.values())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/payment_intents", self._create)
        app.router.add_get("/v1/payment_intents/{id}", self._retrieve)
        app.router.add_post("/v1/payment_intents/{id}", self._update)
        app.router.add_post("/v1/payment_intents/{id}/{action}", self._act)
        app.router.add_post("/v1/refunds", self._refund)
        return app

    async def _begin(self, request: web.Request) -> tuple[str | None, dict[str, str],
                                                          web.Response | None]:
        params = dict((await request.post()).items())
        key = request.headers.get("Idempotency-Key")
        self.calls.append(Call(request.method, request.path, key, params))  # type: ignore[arg-type]
        for fragment, left in list(self.fail.items()):
            if fragment in request.path and left > 0:
                self.fail[fragment] = left - 1
                return key, params, web.json_response(
                    {"error": {"type": "api_error", "message": "boom"}}, status=500)
        if key and key in self.by_key:
            status, body = self.by_key[key]
            return key, params, web.json_response(body, status=status,
                                                  headers={"Idempotent-Replayed": "true"})
        return key, params, None  # type: ignore[return-value]

    def _remember(self, key: str | None, body: dict[str, Any], status: int = 200
                  ) -> web.Response:
        if key:
            self.by_key[key] = (status, body)
        return web.json_response(body, status=status)

    async def _create(self, request: web.Request) -> web.Response:
        key, params, replay = await self._begin(request)
        if replay is not None:
            return replay
        n = next(self._ids)
        manual = params.get("capture_method") == "manual"
        intent = {
            "id": f"pi_{n:06d}", "object": "payment_intent",
            "amount": int(params["amount"]), "currency": params["currency"],
            "status": "requires_capture" if manual and params.get("confirm") == "true"
            else "requires_payment_method",
            "capture_method": params.get("capture_method", "automatic"),
            "client_secret": f"pi_{n:06d}_secret_{n * 7919}",
            "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
            "amount_received": 0,
        }
        self.intents[intent["id"]] = intent
        return self._remember(key, intent)

    async def _retrieve(self, request: web.Request) -> web.Response:
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "resource_missing"}}, status=404)
        return web.json_response(intent)

    async def _update(self, request: web.Request) -> web.Response:
        key, params, replay = await self._begin(request)
        if replay is not None:
            return replay
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "resource_missing"}}, status=404)
        intent.update({k: v for k, v in params.items() if k == "payment_method"})
        return self._remember(key, dict(intent))

    async def _act(self, request: web.Request) -> web.Response:
        key, params, replay = await self._begin(request)
        if replay is not None:
            return replay
        intent = self.intents.get(request.match_info["id"])
        if intent is None:
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "code": "resource_missing"}}, status=404)
        action = request.match_info["action"]
        if action == "capture":
            if intent["status"] != "requires_capture":
                return self._remember(key, {"error": {
                    "type": "invalid_request_error", "code": "payment_intent_unexpected_state"}},
                    400)
            intent["amount_received"] = int(params.get("amount_to_capture", intent["amount"]))
            intent["status"] = "succeeded"
        elif action == "cancel":
            intent["status"] = "canceled"
        elif action == "confirm":
            intent["status"] = "succeeded"
        return self._remember(key, dict(intent))

    async def _refund(self, request: web.Request) -> web.Response:
        key, params, replay = await self._begin(request)
        if replay is not None:
            return replay
        n = next(self._ids)
        refund = {"id": f"re_{n:06d}", "object": "refund", "amount": int(params["amount"]),
                  "payment_intent": params.get("payment_intent"), "status": "succeeded",
                  "currency": "usd"}
        self.refunds[refund["id"]] = refund
        return self._remember(key, refund)


# -- helpers for payment tests over HTTP -------------------------------------------------------

JET = {"name": "Gulfstream G650", "category": "jet", "location": "US-FL", "rate": 1_200_000}
CAR = {"name": "Huracan", "category": "car", "location": "US-CA", "rate": 150_000}
YACHT = {"name": "Lady Aurora", "category": "yacht", "location": "US-FL", "rate": 500_000}


async def make_item(client: Any, auth: Any, body: dict[str, Any] = CAR) -> str:
    response = await client.post("/api/v1/items", json=body, headers=auth("admin"))
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def hold(client: Any, headers: dict[str, str], item: str, start: Any, end: Any
               ) -> dict[str, Any]:
    response = await client.post("/api/v1/bookings", headers=headers, json={
        "item_id": item, "start": start.isoformat(), "end": end.isoformat(),
        "service_level": "standard"})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def change_booking(client: Any, headers: dict[str, str], booking: str, **body: Any
                         ) -> Any:
    """``POST /api/v1/bookings/{booking}/changes`` with ``body`` (datetimes as ISO text)."""
    for key in ("start", "end"):
        if isinstance(body.get(key), datetime):
            body[key] = body[key].isoformat()
    return await client.post(f"/api/v1/bookings/{booking}/changes", headers=headers,
                             json=body)


async def pay(client: Any, headers: dict[str, str], booking: str) -> Any:
    return await client.post(f"/api/v1/bookings/{booking}/payments", headers=headers)


async def deliver(client: Any, payload: str, header: str | None = None) -> Any:
    return await client.post("/api/v1/webhooks/stripe", data=payload.encode(), headers={
        "Stripe-Signature": sign(payload) if header is None else header,
        "Content-Type": "application/json"})


def intent_event(kind: str, intent: str, amount: int, booking: str,
                 event_id: str | None = None, **extra: Any) -> str:
    obj = {"id": intent, "object": "payment_intent", "amount": amount,
           "amount_received": amount if kind.endswith("succeeded") else 0, "currency": "usd",
           "status": "succeeded" if kind.endswith("succeeded") else "requires_payment_method",
           "metadata": {"booking_id": booking, "kind": "charge"}, **extra}
    return event(kind, obj, event_id)


async def count(client: Any, event_type: str) -> int:
    from midas.http.keys import DATABASE

    async with client.server.app[DATABASE].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE type = $1",
                                       event_type))


async def wait_until(check: Any, timeout: float = 8.0) -> None:
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def caught_up(client: Any) -> None:
    """Wait until every read model the service keeps has applied every stored event, so
    what a test reads next is not a state some projection is still moving past."""
    from midas.http.keys import DATABASE, PROJECTORS
    from midas.projection import projection_status

    async def applied() -> bool:
        statuses = await projection_status(client.server.app[DATABASE],
                                           client.server.app[PROJECTORS])
        return all(s.lag == 0 for s in statuses)

    await wait_until(applied)


async def pay_and_confirm(client: Any, headers: dict[str, str], booking: dict[str, Any]
                          ) -> dict[str, Any]:
    """Pay what a held booking asks first as a client would (a payment intent, then
    Stripe's success webhook: the whole total, or the first instalment of a schedule) and
    wait until the process manager has confirmed it. The payment route's answer."""
    first = dict(await (await pay(client, headers, booking["id"])).json())
    await deliver(client, intent_event("payment_intent.succeeded", first["payment_intent"],
                                       first["amount"], booking["id"]))

    async def confirmed() -> bool:
        return await booking_status(client, booking["id"]) == "confirmed"

    await wait_until(confirmed)
    return first


async def paid_yacht(client: Any, auth: Any, start: datetime
                     ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """A new customer's two-day charter of a new `YACHT` from ``start``, its first payment
    made and the booking confirmed: (booking, customer's headers, the payment answer)."""
    yacht = await make_item(client, auth, YACHT)
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, yacht, start, start + timedelta(days=2))
    return booking, customer, await pay_and_confirm(client, customer, booking)


async def booking_status(client: Any, booking: str) -> str:
    from uuid import UUID

    from midas.domain.bookings import Booking
    from midas.http.keys import REPOSITORY

    b = await client.server.app[REPOSITORY].get(UUID(booking), cls=Booking)
    return str(b.state)


async def payment_state(client: Any, booking: str) -> Any:
    from midas.domain.payments import Payment, payment_id
    from midas.http.keys import REPOSITORY

    return await client.server.app[REPOSITORY].get(payment_id(booking), cls=Payment)
