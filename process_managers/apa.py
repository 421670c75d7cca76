"""The APA process manager.

Reactions: `Booking.ApaReconciled` with a top-up -> the top-up is asked for and charged on
the card on file (`commands.apa.collect_top_up`); `Payment.Succeeded` of a top-up -> the
booking's statement records it paid.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from commands.apa import PURPOSE, collect_top_up, record_top_up_paid
from midas.domain.booking_events import BOOKING_APA_RECONCILED
from midas.domain.payment_events import PAYMENT_SUCCEEDED
from midas.eventstore import RecordedEvent
from midas.http.keys import CLOCK, REPOSITORY, STRIPE
from process_managers import ProcessManager, Reaction, caused_by

ACTOR = "apa"


def manager(app: web.Application) -> ProcessManager:
    return ProcessManager("apa_process", reactions(app))


def reactions(app: web.Application) -> dict[str, Reaction]:
    async def on_reconciled(event: RecordedEvent) -> object:
        if int(BOOKING_APA_RECONCILED.of(event).get("top_up") or 0) <= 0:
            return None
        return await collect_top_up(app[REPOSITORY], app[STRIPE], lambda: app[CLOCK](),
                                    event.stream_id, caused_by(ACTOR, "APA overspent", event))

    async def on_succeeded(event: RecordedEvent) -> object:
        d = PAYMENT_SUCCEEDED.of(event)
        if d.get("purpose") != PURPOSE:
            return None
        return await record_top_up_paid(app[REPOSITORY], lambda: app[CLOCK](),
                                        UUID(d["booking_id"]), d["reference"],
                                        int(d["amount"]),
                                        caused_by(ACTOR, "APA top-up paid", event))

    return {BOOKING_APA_RECONCILED: on_reconciled, PAYMENT_SUCCEEDED: on_succeeded}
