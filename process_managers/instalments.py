"""The instalments process manager and its timers.

Reactions: `Payment.Succeeded` -> the payment settles its instalment;
`PaymentSchedule.ForfeitWaived` -> what was paid is refunded. Timers: before and at each
later instalment's due date a reminder (and at the due date its PaymentIntent), an alert
when it is overdue, and the booking cancelled for client default after the grace period
(`commands.instalments.run_timer`), each set by the collection terms the schedule recorded
(projections/due_tasks.py).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aiohttp import web

from commands.instalments import TIMER_KINDS, refund_forfeit, run_timer, settle
from midas.domain.payment_events import PAYMENT_SUCCEEDED
from midas.domain.schedule_events import PAYMENT_SCHEDULE_FORFEIT_WAIVED
from midas.eventstore import RecordedEvent
from midas.http.keys import CLOCK, REPOSITORY, SETTINGS, STRIPE
from process_managers import ProcessManager, Reaction, Timer, caused_by

ACTOR = "instalments"


def manager(app: web.Application) -> ProcessManager:
    return ProcessManager("instalments_process", reactions(app))


def reactions(app: web.Application) -> dict[str, Reaction]:
    async def on_succeeded(event: RecordedEvent) -> object:
        d = PAYMENT_SUCCEEDED.of(event)
        return await settle(app[REPOSITORY], lambda: app[CLOCK](), UUID(d["booking_id"]),
                            d["reference"], int(d["amount"]),
                            caused_by(ACTOR, "payment", event), plan_missing=True)

    async def on_forfeit_waived(event: RecordedEvent) -> object:
        return await refund_forfeit(app[REPOSITORY], lambda: app[CLOCK](),
                                    UUID(PAYMENT_SCHEDULE_FORFEIT_WAIVED.of(event)["booking_id"]),
                                    caused_by(ACTOR, "forfeit waived", event))

    return {PAYMENT_SUCCEEDED: on_succeeded, PAYMENT_SCHEDULE_FORFEIT_WAIVED: on_forfeit_waived}


def timers(app: web.Application) -> dict[str, Timer]:
    def timer(kind: str) -> Timer:
        async def run(booking_id: UUID, now: datetime) -> object:
            return await run_timer(app[REPOSITORY], app[STRIPE], app[SETTINGS], kind,
                                   booking_id, now)
        return run

    return {kind: timer(kind) for kind in TIMER_KINDS}

