"""The payments process manager and its timers.

Reactions: `Payment.Succeeded` -> confirm the booking (or take the item again after an
expired hold, or refund); `Payment.RefundRequested` -> carry the refund out with the
provider; `Booking.Cancelled` -> release the deposit hold and ask for the policy refund.
Timers (see docs/payments.md): the deposit held, held again, lapsed and released, and a
refund the provider could not make yet tried again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from aiohttp import web

from commands.bookings import confirm_paid
from commands.deposits import (
    authorise_deposit,
    lapse_deposit,
    reauthorise_deposit,
    release_deposit,
)
from commands.payment_store import payment_of
from commands.refunds import execute_refund, refund_cancellation
from midas.domain.booking_events import BOOKING_CANCELLED
from midas.domain.payment_events import PAYMENT_REFUND_REQUESTED, PAYMENT_SUCCEEDED
from midas.eventstore import RecordedEvent, Repository
from midas.http.keys import CLOCK, PAYPAL, REPOSITORY, SETTINGS, STRIPE
from midas.payment_providers.stripe_gateway import GatewayError
from process_managers import ProcessManager, Reaction, Timer, caused_by

log = logging.getLogger(__name__)
ACTOR = "payments"


def manager(app: web.Application) -> ProcessManager:
    return ProcessManager("payments_process", reactions(app))


def reactions(app: web.Application) -> dict[str, Reaction]:
    """What the payments process manager does for each event type it reacts to."""

    def repo() -> Repository:
        return app[REPOSITORY]

    def clock() -> datetime:
        return app[CLOCK]()

    async def on_succeeded(event: RecordedEvent) -> object:
        return await confirm_paid(repo(), clock, UUID(PAYMENT_SUCCEEDED.of(event)["booking_id"]),
                                  caused_by(ACTOR, "payment succeeded", event))

    async def on_refund_requested(event: RecordedEvent) -> object:
        requested = PAYMENT_REFUND_REQUESTED.of(event)
        return await execute_refund(repo(), app[STRIPE], clock,
                                    UUID(requested["booking_id"]), requested["reference"],
                                    caused_by(ACTOR, "refund requested", event),
                                    paypal=app[PAYPAL])

    async def on_cancelled(event: RecordedEvent) -> object:
        booking_id = event.stream_id
        meta = caused_by(ACTOR, "booking cancelled", event)
        try:
            await release_deposit(repo(), app[STRIPE], booking_id, clock(),
                                  "booking cancelled", meta)
        except GatewayError:  # the hold then lapses by itself (its lapse timer records it)
            log.warning("deposit not released", extra={"booking": str(booking_id)})
        amount = int(BOOKING_CANCELLED.of(event).get("refund_amount") or 0)
        if amount > 0:
            return await refund_cancellation(repo(), clock, booking_id, amount, meta)
        return None

    return {PAYMENT_SUCCEEDED: on_succeeded, PAYMENT_REFUND_REQUESTED: on_refund_requested,
            BOOKING_CANCELLED: on_cancelled}


def timers(app: web.Application) -> dict[str, Timer]:
    """Deposit timers and the refund retry (rows written by the due_tasks projection)."""

    async def run_authorise(booking_id: UUID, now: datetime) -> object:
        return await authorise_deposit(app[REPOSITORY], app[STRIPE], app[SETTINGS],
                                       booking_id, now, caused_by(ACTOR, "deposit due"))

    async def run_reauthorise(booking_id: UUID, now: datetime) -> object:
        return await reauthorise_deposit(app[REPOSITORY], app[STRIPE], app[SETTINGS],
                                         booking_id, now,
                                         caused_by(ACTOR, "deposit hold ageing"))

    async def run_lapse(booking_id: UUID, now: datetime) -> object:
        return await lapse_deposit(app[REPOSITORY], booking_id, now,
                                   caused_by(ACTOR, "deposit hold over"))

    async def run_release(booking_id: UUID, now: datetime) -> object:
        return await release_deposit(app[REPOSITORY], app[STRIPE], booking_id, now,
                                     "checked in, no damages recorded",
                                     caused_by(ACTOR, "checked in"))

    async def run_refund_retry(booking_id: UUID, now: datetime) -> object:
        payment = await payment_of(app[REPOSITORY], booking_id)
        if payment is None:
            return None
        for key in [k for k in payment.refunds_requested if k not in payment.refunds_done]:
            await execute_refund(app[REPOSITORY], app[STRIPE], lambda: now, booking_id, key,
                                 caused_by(ACTOR, "refund retry"), raise_transient=True,
                                 paypal=app[PAYPAL])
        return None

    return {"deposit_authorise": run_authorise, "deposit_reauthorise": run_reauthorise,
            "deposit_lapse": run_lapse, "deposit_release": run_release,
            "refund_retry": run_refund_retry}
