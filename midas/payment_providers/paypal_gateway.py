"""PayPal's REST refund call: refund (part of) a captured PayPal payment.

A payment made through PayPal (reported by IPN) is identified by its `txn_id`, which is
the capture id of PayPal's REST API. A refund is `POST /v2/payments/captures/{id}/refund`
with an OAuth2 access token (client credentials) and `PayPal-Request-Id` set to the
command's idempotency key (`booking:<id>:refund:cancel:v1`...): PayPal answers the same
refund to the same key, so money moves once whatever is retried.

PayPal's own Python SDKs are synchronous (or deprecated); these two calls are made with
aiohttp, as the IPN verification is. Only ids, statuses and amounts leave this module;
the client secret and the access token are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from decimal import Decimal
from typing import Any

import aiohttp

from midas import tracing
from midas.config import Settings
from midas.domain.payments import currency_exponent
from midas.payment_providers.stripe_gateway import GatewayError, RefundResult

log = logging.getLogger(__name__)


def from_minor_units(amount: int, currency: str) -> str:
    """123450 USD -> "1234.50"; 1234 JPY -> "1234" (PayPal's decimal strings)."""
    exponent = currency_exponent(currency)
    value = Decimal(amount).scaleb(-exponent)
    return f"{value:.{exponent}f}"


class PayPalGateway:
    """Refunds through PayPal's REST API (`paypal_api_base`), with the app's credentials."""

    def __init__(self, settings: Settings) -> None:
        self._base = settings.paypal_api_base.rstrip("/")
        self._client_id = settings.paypal_client_id
        self._secret = settings.paypal_client_secret
        self._timeout = aiohttp.ClientTimeout(total=settings.paypal_timeout_s)
        self._token: tuple[str, float] | None = None  # access token, monotonic expiry
        self._token_lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._client_id and self._secret)

    async def refund(self, capture_id: str, amount: int, currency: str, key: str,
                     note: str | None = None) -> RefundResult:
        """Refund `amount` minor units of the capture; the same `key` answers the same
        refund. Raises GatewayError (transient for network failures, 429 and 5xx)."""
        if not self.configured:
            raise GatewayError("PayPal REST credentials are not configured")
        body: dict[str, Any] = {"amount": {"value": from_minor_units(amount, currency),
                                           "currency_code": currency.upper()},
                                "invoice_id": key[:127]}
        if note:
            body["note_to_payer"] = note[:255]
        with tracing.span("paypal refund", {"midas.provider": "paypal"}, kind="client"):
            answer = await self._post(f"/v2/payments/captures/{capture_id}/refund", body,
                                      {"PayPal-Request-Id": key[:108],
                                       "Prefer": "return=representation"})
        status = str(answer.get("status", "")).upper()
        if status in ("CANCELLED", "FAILED"):
            raise GatewayError(f"PayPal refund {status.lower()}")
        value = (answer.get("amount") or {}).get("value")
        refunded = amount if value is None else int(
            (Decimal(str(value)).scaleb(currency_exponent(currency))).to_integral_value())
        return RefundResult(id=str(answer["id"]), status=status.lower(), amount=refunded)

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]
                    ) -> dict[str, Any]:
        for attempt in range(2):  # once more with a fresh token if the cached one expired
            token = await self._access_token(force=attempt > 0)
            try:
                async with aiohttp.ClientSession(timeout=self._timeout) as session, \
                        session.post(self._base + path, json=body, headers={
                            **headers, "Authorization": f"Bearer {token}"}) as response:
                    if response.status == 401 and attempt == 0:
                        continue
                    payload = await response.json(content_type=None)
                    self._check(response.status, payload)
                    return payload if isinstance(payload, dict) else {}
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayError(f"PayPal unreachable ({type(exc).__name__})",
                                   transient=True) from None
        raise GatewayError("PayPal refused the credentials")

    @staticmethod
    def _check(status: int, payload: Any) -> None:
        if status < 400:
            return
        name = payload.get("name") if isinstance(payload, dict) else None
        details = payload.get("details") if isinstance(payload, dict) else None
        issue = details[0].get("issue") if isinstance(details, list) and details and isinstance(
            details[0], dict) else None
        reason = str(issue or name or f"HTTP {status}")[:100]
        raise GatewayError(f"PayPal refused the refund: {reason}",
                           transient=status == 429 or status >= 500)

    async def _access_token(self, *, force: bool = False) -> str:
        async with self._token_lock:
            if self._token and not force and time.monotonic() < self._token[1]:
                return self._token[0]
            secret = self._secret.get_secret_value() if self._secret else ""
            basic = base64.b64encode(f"{self._client_id}:{secret}".encode()).decode()
            try:
                async with aiohttp.ClientSession(timeout=self._timeout) as session, \
                        session.post(self._base + "/v1/oauth2/token",
                                     headers={"Authorization": f"Basic {basic}"},
                                     data={"grant_type": "client_credentials"}) as response:
                    payload = await response.json(content_type=None)
                    if response.status >= 400 or not isinstance(payload, dict):
                        raise GatewayError("PayPal refused the credentials",
                                           transient=response.status >= 500)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayError(f"PayPal unreachable ({type(exc).__name__})",
                                   transient=True) from None
            lifetime = max(int(payload.get("expires_in", 300)) - 60, 30)
            self._token = (str(payload["access_token"]), time.monotonic() + lifetime)
            return self._token[0]
