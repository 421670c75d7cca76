"""Provider notifications: Stripe webhooks and PayPal IPN.

Stripe: the signature is checked over the raw body before anything is parsed (400, nothing
stored, when it is bad, or its timestamp is more than the tolerance away from now, in
either direction). Each Stripe event id takes effect once: its row in
`pay_webhook_events` is written by a `Statement` in the very append that records its
effects, so two simultaneous deliveries race on the payment's version and the loser,
rerun on fresh state, finds the row. Facts are recorded idempotently on the `Payment`
aggregate; a late or out-of-order fact never moves anything backwards.

PayPal: within a per-IP rate limit and a bound on the verifications in flight (checked
before anything goes out), the IPN is answered 200 at once; a background task posts the
message back unchanged with `cmd=_notify-validate` prepended and acts only on VERIFIED,
the configured receiver and each `txn_id` once: a `Completed` payment of the booking's
amount and currency, or a refund, reversal or cancelled reversal (`commands.paypal_ipn`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import aiohttp
import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel, Field
from stripe import SignatureVerificationError

from commands import instalments, paypal_ipn
from commands.payment_store import open_payment, payment_of, reference_statement
from midas import tracing
from midas.domain.bookings import Booking
from midas.domain.errors import DomainError
from midas.domain.payments import Payment, to_minor_units
from midas.eventstore import AggregateNotFound, Database, Repository, Statement, retry_on_conflict
from midas.http.api import Api
from midas.http.keys import CLOCK, DATABASE, LIMITER, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.http.ratelimit import RATE_LIMITED, client_ip, enforce
from midas.http.requestkeys import REQUEST_ID
from midas.http.security_events import record_for
from midas.payment_providers.stripe_signature import verify_stripe_signature
from midas.security.events import Kind, SecurityEvent, record_quietly

log = logging.getLogger(__name__)
api = Api(tag="webhooks", kind="command", idempotent=False)
IPN_TASKS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("ipn_tasks")
Clock = Callable[[], datetime]


def seen_statement(provider: str, event_id: str) -> Statement:
    """Fails (unique key) if another append already recorded this delivery."""
    return Statement("INSERT INTO pay_webhook_events (provider, event_id) VALUES ($1, $2)",
                     (provider, event_id))


async def _seen(db: Database, provider: str, event_id: str) -> bool:
    async with db.acquire() as conn:
        return bool(await conn.fetchval(
            "SELECT 1 FROM pay_webhook_events WHERE provider = $1 AND event_id = $2",
            provider, event_id))


async def count_outcome(db: Database, provider: str, outcome: str) -> None:
    """One more notification of ``provider`` ended in ``outcome`` (for /metrics); a failure
    to count changes nothing of the answer."""
    try:
        async with db.acquire() as conn:
            await conn.execute(
                "INSERT INTO ops_webhook_outcomes (provider, outcome, count) VALUES ($1, $2, 1)"
                " ON CONFLICT (provider, outcome) DO UPDATE"
                " SET count = ops_webhook_outcomes.count + 1",
                provider, outcome.replace(" ", "_"))
    except Exception:
        log.warning("webhook outcome not counted", extra={"provider": provider},
                    exc_info=True)


async def alert(db: Database, provider: str, kind: str, reference: str | None,
                detail: dict[str, Any]) -> None:
    """An error record for staff (category payment, severity high)."""
    log.error("payment notification rejected",
              extra={"category": "payment", "severity": "high", "kind": kind,
                     "provider": provider, "reference": reference})
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO pay_alerts (provider, kind, reference, detail) VALUES ($1, $2, $3, $4)",
            provider, kind, reference, orjson.dumps(detail).decode())


# -- Stripe ----------------------------------------------------------------------------------


def _intent_of(obj: dict[str, Any]) -> str | None:
    if obj.get("object") == "payment_intent":
        return obj.get("id")
    intent = obj.get("payment_intent")
    return intent.get("id") if isinstance(intent, dict) else intent


def _on_intent_succeeded(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    if (obj.get("metadata") or {}).get("kind") == "deposit":
        return  # deposits are captured by our own command, which records it
    method = obj.get("payment_method")
    p.succeed("stripe", obj["id"], int(obj.get("amount_received") or obj["amount"]),
              obj["currency"], now,
              payment_method=method.get("id") if isinstance(method, dict) else method)


def _on_intent_failed(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    if (obj.get("metadata") or {}).get("kind") == "deposit":
        return
    error = obj.get("last_payment_error") or {}
    reason = error.get("decline_code") or error.get("code") or "payment_failed"
    p.fail("stripe", obj["id"], str(reason), now)


def _on_intent_canceled(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    if (obj.get("metadata") or {}).get("kind") == "deposit":
        p.lapse_deposit(obj["id"], now)  # only if it is the current hold


def _on_charge_refunded(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    intent = _intent_of(obj) or obj["id"]
    if intent not in p.settled:  # the refund overtook the success: a refund implies it
        p.succeed("stripe", intent, int(obj.get("amount_captured") or obj["amount"]),
                  obj["currency"], now)
    refunds = [r for r in (obj.get("refunds") or {}).get("data") or []
               if r.get("status", "succeeded") == "succeeded"]
    if not refunds and obj.get("amount_refunded"):
        extra = int(obj["amount_refunded"]) - p.refunded
        if extra > 0:
            p.refunded_by_provider(f"{obj['id']}:{obj['amount_refunded']}", extra, now)
    for refund in refunds:
        p.refunded_by_provider(refund["id"], int(refund["amount"]), now,
                               key=(refund.get("metadata") or {}).get("key"))


def _on_refund(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    key = (obj.get("metadata") or {}).get("key")
    if obj.get("status") == "succeeded":
        p.refunded_by_provider(obj["id"], int(obj["amount"]), now, key=key)
    elif obj.get("status") in ("failed", "canceled") and key:
        p.refund_failed(key, str(obj.get("failure_reason") or obj["status"]), now)


def _on_dispute_created(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    p.open_dispute(obj["id"], int(obj["amount"]), str(obj.get("reason") or "unknown"), now,
                   charges=_disputed(obj))


def _disputed(obj: dict[str, Any]) -> tuple[str | None, ...]:
    """What a dispute names of the payment it concerns: its PaymentIntent (our reference
    of an instalment), then its charge."""
    charge = obj.get("charge")
    return (_intent_of(obj), charge.get("id") if isinstance(charge, dict) else charge)


def _on_dispute_closed(p: Payment, obj: dict[str, Any], now: datetime) -> None:
    if obj["id"] not in p.disputes:
        _on_dispute_created(p, obj, now)
    outcome = "won" if obj.get("status") in ("won", "warning_closed") else "lost"
    p.close_dispute(obj["id"], outcome, int(obj["amount"]), now)


STRIPE_HANDLERS: dict[str, Callable[[Payment, dict[str, Any], datetime], None]] = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "payment_intent.canceled": _on_intent_canceled,
    "charge.refunded": _on_charge_refunded,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "charge.refund.updated": _on_refund,
    "charge.dispute.created": _on_dispute_created,
    "charge.dispute.closed": _on_dispute_closed,
}


async def _booking_for(db: Database, obj: dict[str, Any]) -> UUID | None:
    booking = (obj.get("metadata") or {}).get("booking_id")
    if booking:
        try:
            return UUID(booking)
        except ValueError:
            return None
    refs = [r for r in (_intent_of(obj), obj.get("id"), obj.get("charge")) if r]
    async with db.acquire() as conn:
        return await conn.fetchval(
            "SELECT booking_id FROM pay_references WHERE reference = ANY($1::text[]) LIMIT 1",
            refs)


async def apply_stripe_event(
    repo: Repository, db: Database, clock: Clock, event: dict[str, Any],
    metadata: dict[str, Any],
) -> str:
    """Record a verified Stripe event's effects once. Answers what happened."""
    handler = STRIPE_HANDLERS.get(event.get("type", ""))
    if handler is None:
        return "ignored"
    event_id, obj = str(event["id"]), event["data"]["object"]
    booking_id = await _booking_for(db, obj)
    if booking_id is None:
        log.warning("stripe event for no known booking", extra={"event": event_id})
        return "unknown booking"
    metadata = {**metadata, "causation_id": event_id, "stripe_event": event["type"]}

    async def attempt() -> str:
        if await _seen(db, "stripe", event_id):
            return "duplicate"
        now = clock()
        payment = await payment_of(repo, booking_id)
        intent = _intent_of(obj)
        if payment is None:
            try:
                booking = await repo.get(booking_id, cls=Booking)
            except AggregateNotFound:
                return "unknown booking"
            payment = await open_payment(repo, booking, "stripe", intent, now)
        handler(payment, obj, now)
        if not payment.pending_events:
            return "no change"
        statements = [seen_statement("stripe", event_id)]
        if intent:
            statements.append(reference_statement(intent, booking_id))
        try:
            await repo.save(payment, metadata=metadata, statements=tuple(statements))
        except asyncpg.UniqueViolationError:
            return "duplicate"
        return "applied"

    return await retry_on_conflict(attempt)


class Received(BaseModel):
    received: bool
    outcome: str = Field(description="What became of the event: `applied`, `duplicate`,"
                                     " `ignored`, `rejected`, ...")


@api.post("/api/v1/webhooks/stripe", status=200, response=Received,
          summary="Stripe webhook (authenticated by its Stripe-Signature)",
          problems={400: "The signature is missing, wrong or too old, or not a Stripe event"})
async def post_stripe_webhook(request: web.Request) -> web.Response:
    try:
        outcome = await _stripe_webhook(request)
    except Problem as problem:
        await count_outcome(request.app[DATABASE], "stripe", problem.extra.get(
            "outcome", "refused"))
        raise
    await count_outcome(request.app[DATABASE], "stripe", outcome)
    return web.json_response({"received": True, "outcome": outcome})


async def _stripe_webhook(request: web.Request) -> str:
    """What became of a Stripe delivery; a Problem (with its outcome) when refused."""
    settings = request.app[SETTINGS]
    raw = await request.read()
    secret = settings.stripe_webhook_secret
    if secret is None:
        raise Problem(503, "Stripe webhooks are not configured.", outcome="not_configured")
    try:
        verify_stripe_signature(raw.decode("utf-8"), request.headers.get("Stripe-Signature"),
                                secret.get_secret_value(), settings.stripe_webhook_tolerance_s,
                                now=time.time())  # Stripe signs with the wall clock
    except (SignatureVerificationError, UnicodeDecodeError):
        await record_for(request, Kind.WEBHOOK_SIGNATURE_FAILED, actor="stripe",
                         provider="stripe")
        raise Problem(400, "The signature is missing, wrong or too old.",
                      title="Invalid signature", outcome="invalid_signature") from None
    try:
        event = orjson.loads(raw)
        if not isinstance(event["data"]["object"], dict):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise Problem(400, "Not a Stripe event.", outcome="malformed") from None
    metadata = {"actor": "stripe", "actor_role": None, "request_id": request.get(REQUEST_ID),
                "correlation_id": str(event.get("id"))}
    try:
        outcome = await apply_stripe_event(request.app[REPOSITORY], request.app[DATABASE],
                                           request.app[CLOCK], event, metadata)
    except DomainError as exc:  # e.g. paid in another currency: recorded for staff, 200
        await alert(request.app[DATABASE], "stripe", "rejected", str(event.get("id")),
                    {"type": event.get("type"), "reason": str(exc)})
        outcome = "rejected"
    return outcome


# -- PayPal IPN ------------------------------------------------------------------------------


@api.post("/api/v1/webhooks/paypal", status=200, problems=RATE_LIMITED,
          summary="PayPal IPN (answered at once, verified with PayPal in the background)")
async def post_paypal_ipn(request: web.Request) -> web.Response:
    """Each IPN costs a verification post to PayPal: refused (429) beyond a per-IP rate,
    and (503, PayPal retries later) while too many verifications are in flight."""
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"ipn:ip:{client_ip(request, settings)}",
                  settings.ipn_rate_limit, settings.ipn_rate_window_s, "notifications")
    tasks = request.app[IPN_TASKS]
    if len(tasks) >= settings.ipn_max_pending:
        raise Problem(503, "Too many notifications are being verified; retry later.",
                      headers={"Retry-After": str(settings.ipn_busy_retry_after_s)})
    raw = await request.read()
    task = asyncio.create_task(process_ipn(request.app, raw))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return web.Response(status=200)


async def verify_ipn(url: str, raw: bytes) -> bool:
    with tracing.span("paypal verify", {"midas.provider": "paypal"}, kind="client"):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session, \
                session.post(url, data=b"cmd=_notify-validate&" + raw, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": "Midas-IPN-Verifier"}) as response:
            return response.status == 200 and (await response.text()).strip() == "VERIFIED"


async def process_ipn(app: web.Application, raw: bytes) -> str:
    """Verify with PayPal, check, and record a completed payment once. Never raises."""
    try:
        outcome = await _process_ipn(app, raw)
    except Exception:
        log.exception("IPN processing failed")
        outcome = "error"
    await count_outcome(app[DATABASE], "paypal", outcome)
    return outcome


async def _process_ipn(app: web.Application, raw: bytes) -> str:
    settings, db, repo = app[SETTINGS], app[DATABASE], app[REPOSITORY]
    if not await verify_ipn(settings.paypal_verify_url, raw):
        log.warning("IPN not verified by PayPal: ignored")
        await record_quietly(db, settings, SecurityEvent(
            Kind.WEBHOOK_SIGNATURE_FAILED, actor="paypal",
            route="POST /api/v1/webhooks/paypal", detail={"provider": "paypal"}),
            app[CLOCK]())
        return "invalid"
    fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    txn, status = fields.get("txn_id", ""), fields.get("payment_status")
    if status != "Completed" and status not in paypal_ipn.ADJUSTMENTS:
        return "not completed"
    receiver = fields.get("receiver_email") or fields.get("business")
    if not settings.paypal_receiver_email or (receiver or "").lower() != (
            settings.paypal_receiver_email.lower()):
        await alert(db, "paypal", "wrong_receiver", txn, {"receiver": receiver})
        return "wrong receiver"
    if status in paypal_ipn.ADJUSTMENTS:
        try:
            return await paypal_ipn.apply_adjustment(
                repo, db, app[CLOCK], fields, lambda t: seen_statement("paypal", t),
                lambda t: _seen(db, "paypal", t))
        except paypal_ipn.Rejected as rejected:
            await alert(db, "paypal", rejected.kind, txn or None,
                        {"status": status, **rejected.detail})
            return rejected.kind.replace("_", " ")
        except DomainError as exc:
            await alert(db, "paypal", "rejected", txn or None,
                        {"status": status, "reason": str(exc)})
            return "rejected"
    try:
        booking_id = UUID(fields.get("custom") or fields.get("invoice") or "")
        booking = await repo.get(booking_id, cls=Booking)
    except (ValueError, AggregateNotFound):
        await alert(db, "paypal", "unknown_booking", txn, {"custom": fields.get("custom")})
        return "unknown booking"
    currency = (fields.get("mc_currency") or "").upper()
    try:
        amount = to_minor_units(fields.get("mc_gross") or "", currency)
    except ArithmeticError:
        amount = -1
    due, due_currency = booking.total_due, booking.quote["currency"].upper()
    payable = await instalments.payable_amounts(repo, app[CLOCK], booking)
    if currency != due_currency or amount not in payable:
        await alert(db, "paypal", "amount_mismatch", txn, {
            "booking_id": str(booking_id), "amount": amount, "currency": currency,
            "expected_amount": due, "expected_currency": due_currency})
        return "amount mismatch"
    if not txn:
        await alert(db, "paypal", "no_txn_id", None, {"booking_id": str(booking_id)})
        return "no txn_id"
    metadata = {"actor": "paypal", "actor_role": None, "causation_id": f"paypal:{txn}",
                "correlation_id": f"paypal:{txn}"}

    async def attempt() -> str:
        if await _seen(db, "paypal", txn):
            return "duplicate"
        payment = await payment_of(repo, booking_id)
        if payment is None:
            payment = await open_payment(repo, booking, "paypal", None, app[CLOCK]())
        if not payment.succeed("paypal", txn, amount, currency, app[CLOCK]()):
            return "duplicate"
        try:
            await repo.save(payment, metadata=metadata,
                            statements=(seen_statement("paypal", txn),
                                        reference_statement(txn, booking_id)))
        except asyncpg.UniqueViolationError:
            return "duplicate"
        return "applied"

    return await retry_on_conflict(attempt)


async def drain_ipn_tasks(app: web.Application, timeout: float = 10.0) -> None:
    pending = app[IPN_TASKS]
    tasks = list(pending)
    if tasks:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait(tasks, timeout=timeout)
