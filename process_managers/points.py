"""The points process manager: loyalty points redeemed for a booking follow it.

Spent when the booking is confirmed (or a change paid with points is applied), given back
when its hold expires, a change lapses or it is cancelled unpaid, and given back in
proportion to the refund when a paid booking is cancelled.
"""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from commands.points import follow_booking
from midas.domain.accounts import Account
from midas.domain.booking_events import (
    BOOKING_CANCELLED,
    BOOKING_CHANGE_LAPSED,
    BOOKING_CHANGED,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
)
from midas.eventstore import RecordedEvent, Repository
from midas.http.keys import REPOSITORY
from process_managers import ProcessManager, Reaction, caused_by

ACTOR = "points"


def manager(app: web.Application) -> ProcessManager:
    return ProcessManager("points_process", reactions(app))


def reactions(app: web.Application) -> dict[str, Reaction]:
    """What happens to a booking's points when it is confirmed, expires or is cancelled."""

    def repo() -> Repository:
        return app[REPOSITORY]

    async def on_confirmed(event: RecordedEvent) -> object:
        key = str(event.stream_id)
        return await follow_booking(repo(), event.stream_id, lambda a: a.spend_points(key),
                                    caused_by(ACTOR, "booking confirmed", event))

    async def on_expired(event: RecordedEvent) -> object:
        key = str(event.stream_id)
        return await follow_booking(repo(), event.stream_id,
                                    lambda a: a.release_points(key, "hold expired"),
                                    caused_by(ACTOR, "hold expired", event))

    async def on_cancelled(event: RecordedEvent) -> object:
        booking = str(event.stream_id)
        share = Decimal(BOOKING_CANCELLED.of(event)["refund_percentage"])

        def change(account: Account) -> bool:
            changed = False
            for key in [k for k in account.redemptions
                        if k == booking or k.startswith(f"{booking}:change:")]:
                changed = account.release_points(key, "cancelled unpaid") or (
                    account.return_points(key, share, "cancelled")) or changed
            return changed

        return await follow_booking(repo(), event.stream_id, change,
                                    caused_by(ACTOR, "cancelled", event))

    def change_key(event: RecordedEvent, number: int) -> str:
        return f"{event.stream_id}:change:{number}"

    async def on_changed(event: RecordedEvent) -> object:
        changed = BOOKING_CHANGED.of(event)
        if not changed.get("points"):
            return None
        key = change_key(event, changed["number"])
        return await follow_booking(repo(), event.stream_id, lambda a: a.spend_points(key),
                                    caused_by(ACTOR, "change paid", event))

    async def on_change_lapsed(event: RecordedEvent) -> object:
        key = change_key(event, BOOKING_CHANGE_LAPSED.of(event)["number"])
        return await follow_booking(repo(), event.stream_id,
                                    lambda a: a.release_points(key, "change lapsed"),
                                    caused_by(ACTOR, "change lapsed", event))

    return {BOOKING_CONFIRMED: on_confirmed, BOOKING_EXPIRED: on_expired,
            BOOKING_CANCELLED: on_cancelled, BOOKING_CHANGED: on_changed,
            BOOKING_CHANGE_LAPSED: on_change_lapsed}
