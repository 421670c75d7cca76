"""The changes process manager and its timer.

Reactions: `Payment.Succeeded` -> the pending change it pays takes effect (or, paying a
change that lapsed meanwhile, is refunded); `Booking.Changed` -> the deposit hold follows
the new terms and the part given up is refunded. Timer: a change not paid in time lapses.
"""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from aiohttp import web

from commands.booking_changes import (
    follow_deposit,
    lapse_change,
    money_parts,
    refund_change,
    settle_change,
)
from midas.domain.booking_events import BOOKING_CHANGED
from midas.domain.payment_events import PAYMENT_SUCCEEDED
from midas.eventstore import RecordedEvent
from midas.http.keys import CLOCK, REPOSITORY, SETTINGS, STRIPE
from midas.payment_providers.stripe_gateway import GatewayError
from process_managers import ProcessManager, Reaction, Timer, caused_by

log = logging.getLogger(__name__)
ACTOR = "changes"


def manager(app: web.Application) -> ProcessManager:
    return ProcessManager("changes_process", reactions(app))


def reactions(app: web.Application) -> dict[str, Reaction]:
    async def on_succeeded(event: RecordedEvent) -> object:
        d = PAYMENT_SUCCEEDED.of(event)
        return await settle_change(app[REPOSITORY], lambda: app[CLOCK](),
                                   UUID(d["booking_id"]), d["reference"], int(d["amount"]),
                                   caused_by(ACTOR, "payment succeeded", event))

    async def on_changed(event: RecordedEvent) -> object:
        d = BOOKING_CHANGED.of(event)
        try:
            await follow_deposit(
                app[REPOSITORY], app[STRIPE], app[SETTINGS], event.stream_id,
                int(d["previous"]["quote"].get("security_deposit", 0)),
                int(d["terms"]["quote"].get("security_deposit", 0)), app[CLOCK](),
                caused_by(ACTOR, "booking changed its deposit", event))
        except GatewayError:  # released; the new hold is for staff (the card refused it)
            log.warning("deposit not held again after a change",
                        extra={"booking": str(event.stream_id)})
        amount = int(d.get("refund_amount") or 0)
        if amount <= 0:
            return None
        old, new, difference = d["previous"]["quote"], d["terms"]["quote"], d["difference"]
        return await refund_change(app[REPOSITORY], lambda: app[CLOCK](), event.stream_id,
                                   int(d["number"]), amount,
                                   caused_by(ACTOR, "booking changed", event),
                                   lambda refund: money_parts(old, new, refund, difference))

    return {PAYMENT_SUCCEEDED: on_succeeded, BOOKING_CHANGED: on_changed}


def timers(app: web.Application) -> dict[str, Timer]:
    async def run_lapse(booking_id: UUID, now: datetime) -> object:
        return await lapse_change(app[REPOSITORY], booking_id, now,
                                  caused_by("scheduler", "change not paid in time"))

    return {"change_lapse": run_lapse}
