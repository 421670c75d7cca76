"""Stripe through the official SDK (async methods, `StripeClient`).

Every call carries an idempotency key derived from the command that makes it (never a
random one), so a command retried after a crash gets the same object back from Stripe and
money moves once. Only ids, statuses and amounts leave this module; the client secret is
handed to the caller for the customer and never recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe

from midas import tracing
from midas.config import Settings

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """The provider refused or could not be reached (the message never holds secrets)."""

    def __init__(self, message: str, *, declined: bool = False, transient: bool = False
                 ) -> None:
        super().__init__(message)
        self.declined = declined
        self.transient = transient  # worth retrying later (network, rate limit, 5xx)


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    amount: int
    currency: str
    client_secret: str | None = None
    payment_method: str | None = None


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str
    amount: int


def _intent(stripe_obj: Any) -> Intent:
    obj = stripe_obj.to_dict()
    return Intent(id=obj["id"], status=obj["status"], amount=int(obj["amount"]),
                  currency=str(obj["currency"]).upper(), client_secret=obj.get("client_secret"),
                  payment_method=_id(obj.get("payment_method")))


def _id(value: Any) -> str | None:
    """An expandable field: the id, or the id of the expanded object."""
    return value.get("id") if isinstance(value, dict) else value


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        self._client = stripe.StripeClient(
            settings.stripe_secret_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base},
            http_client=stripe.AIOHTTPClient(timeout=settings.stripe_timeout_s),
            max_network_retries=0,
        )

    async def _call(self, what: str, coroutine: Any) -> Any:
        try:
            with tracing.span(f"stripe {what}", {"midas.provider": "stripe"}, kind="client"):
                return await coroutine
        except stripe.CardError as exc:
            raise GatewayError(f"stripe {what}: card declined ({exc.code})",
                               declined=True) from None
        except stripe.StripeError as exc:
            # The SDK's message can echo request parameters; keep only the kind and code.
            status = getattr(exc, "http_status", None) or 0
            transient = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or (
                status >= 500 or status == 0)
            raise GatewayError(f"stripe {what}: {type(exc).__name__} "
                               f"({getattr(exc, 'code', None)})", transient=transient) from None

    async def create_intent(
        self, *, amount: int, currency: str, key: str, metadata: dict[str, str],
        manual_capture: bool = False, confirm: bool = False, payment_method: str | None = None,
    ) -> Intent:
        params: dict[str, Any] = {
            "amount": amount, "currency": currency.lower(), "metadata": metadata,
            "capture_method": "manual" if manual_capture else "automatic",
        }
        if payment_method:
            params["payment_method"] = payment_method
        if confirm:
            params["confirm"] = True
            params["off_session"] = True
        obj = await self._call("create intent", self._client.v1.payment_intents.create_async(
            params=params, options={"idempotency_key": key}))  # type: ignore[arg-type]
        return _intent(obj)

    async def retrieve(self, intent_id: str) -> Intent:
        obj = await self._call("retrieve intent",
                               self._client.v1.payment_intents.retrieve_async(intent_id))
        return _intent(obj)

    async def confirm_with(self, intent_id: str, payment_method: str, *, attach_key: str,
                           confirm_key: str) -> Intent:
        """Confirm an intent with a payment method on the server (the method first set on
        the intent, then confirmed: two calls, each under its own idempotency key)."""
        await self._call("attach payment method", self._client.v1.payment_intents.update_async(
            intent_id, params={"payment_method": payment_method},
            options={"idempotency_key": attach_key}))
        obj = await self._call("confirm", self._client.v1.payment_intents.confirm_async(
            intent_id, options={"idempotency_key": confirm_key}))
        return _intent(obj)

    async def capture(self, intent_id: str, amount: int, key: str) -> Intent:
        obj = await self._call("capture", self._client.v1.payment_intents.capture_async(
            intent_id, params={"amount_to_capture": amount},
            options={"idempotency_key": key}))
        return _intent(obj)

    async def cancel(self, intent_id: str, key: str) -> Intent:
        obj = await self._call("cancel", self._client.v1.payment_intents.cancel_async(
            intent_id, options={"idempotency_key": key}))
        return _intent(obj)

    async def refund(self, intent_id: str, amount: int, key: str,
                     metadata: dict[str, str]) -> RefundResult:
        obj = await self._call("refund", self._client.v1.refunds.create_async(
            params={"payment_intent": intent_id, "amount": amount, "metadata": metadata},
            options={"idempotency_key": key}))
        obj = obj.to_dict()
        return RefundResult(id=obj["id"], status=obj["status"], amount=int(obj["amount"]))
