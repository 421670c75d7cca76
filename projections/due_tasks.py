"""The due-tasks process manager: timers of the booking lifecycle, built from events.

Held -> expire the hold at its deadline; Confirmed -> automatic check-out at the start;
CheckedOut -> automatic check-in at the end (the scheduler adds the configured delay,
2 h by default). Any later event of the booking removes the timers it made pointless.
Task ids are deterministic, so a replay or a rebuild never doubles a task.

A batch reads the timers of its bookings once, changes them in memory in event order (so a
check-in sees a deposit timer made earlier in the same batch) and writes them at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict
from uuid import UUID

import asyncpg

from midas.domain.booking_events import (
    BOOKING_CANCELLED,
    BOOKING_CHANGE_LAPSED,
    BOOKING_CHANGE_REQUESTED,
    BOOKING_CHANGED,
    BOOKING_CHECKED_IN,
    BOOKING_CHECKED_OUT,
    BOOKING_CONFIRMED,
    BOOKING_EXPIRED,
    BOOKING_HELD,
    moved,
)
from midas.domain.booking_rules import CollectionTerms
from midas.domain.events import shared_fields
from midas.domain.payment_events import (
    PAYMENT_DEPOSIT_AUTHORISED,
    PAYMENT_DEPOSIT_CAPTURED,
    PAYMENT_DEPOSIT_LAPSED,
    PAYMENT_DEPOSIT_REAUTHORISED,
    PAYMENT_DEPOSIT_RELEASED,
    PAYMENT_REFUND_FAILED,
    PAYMENT_REFUND_REQUESTED,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
)
from midas.domain.schedule_events import (
    PAYMENT_SCHEDULE_DEFAULTED,
    PAYMENT_SCHEDULE_DUE_DATE_MOVED,
    PAYMENT_SCHEDULE_INSTALMENT_PAID,
    PAYMENT_SCHEDULE_INSTALMENT_SPLIT,
    PAYMENT_SCHEDULE_INSTALMENT_WAIVED,
    PAYMENT_SCHEDULE_PLANNED,
    instalment_facts,
)
from midas.eventstore import RecordedEvent
from midas.scheduler import task_id
from projections.batch import RowChanges, uuid_of

DUE_TASKS_TABLE = "due_tasks"
EXPIRE_HOLD, CHECK_OUT, CHECK_IN = "expire_hold", "check_out", "check_in"
# Security deposit timers; the scheduler shifts them by settings
# (authorise N days before the start, re-authorise hours before the hold lapses, release
# hours after check-in). Holds are numbered, so each one has its own timers.
DEPOSIT_AUTHORISE, DEPOSIT_REAUTHORISE = "deposit_authorise", "deposit_reauthorise"
DEPOSIT_LAPSE, DEPOSIT_RELEASE = "deposit_lapse", "deposit_release"
REFUND_RETRY = "refund_retry"  # a safety net: the process manager refunds at once
CHANGE_LAPSE = "change_lapse"  # an increase not paid within the hold window lapses
CHANGE_EVENTS = (BOOKING_CHANGE_REQUESTED, BOOKING_CHANGED, BOOKING_CHANGE_LAPSED)
# Later instalments of a payment schedule: a reminder days before the due date, the payment
# request (and a second reminder) at it, the alert and the default after it, by the
# collection terms the schedule recorded when it was planned.
INSTALMENT_TIMERS = ("instalment_remind", "instalment_due", "instalment_overdue",
                     "instalment_default")
SCHEDULE_EVENTS = (PAYMENT_SCHEDULE_PLANNED, PAYMENT_SCHEDULE_DUE_DATE_MOVED,
                   PAYMENT_SCHEDULE_INSTALMENT_PAID, PAYMENT_SCHEDULE_INSTALMENT_WAIVED,
                   PAYMENT_SCHEDULE_INSTALMENT_SPLIT, PAYMENT_SCHEDULE_DEFAULTED)
DEPOSIT_EVENTS = (
    PAYMENT_REFUND_REQUESTED, PAYMENT_REFUNDED, PAYMENT_REFUND_FAILED,
    PAYMENT_DEPOSIT_AUTHORISED, PAYMENT_DEPOSIT_REAUTHORISED, PAYMENT_DEPOSIT_CAPTURED,
    PAYMENT_DEPOSIT_RELEASED, PAYMENT_DEPOSIT_LAPSED,
)
_PAYMENT_EVENTS = frozenset({PAYMENT_SUCCEEDED, *DEPOSIT_EVENTS})
_DEPOSIT_ENDED = (PAYMENT_DEPOSIT_CAPTURED, PAYMENT_DEPOSIT_RELEASED, PAYMENT_DEPOSIT_LAPSED)


class _OfBooking(TypedDict):
    """What every payment and payment schedule event records: the booking it is for."""

    booking_id: str


# The booking of a payment or payment schedule event (whose stream is not the booking's).
_of_booking = shared_fields(_OfBooking)


class DueTasksProjector:
    name = "due_tasks"
    tables = (DUE_TASKS_TABLE,)
    # Written by the scheduler and the clock, not by events: `projections verify` skips them.
    unverified_columns = ("attempts", "last_error", "created_at")
    indexes_read = frozenset({"due_tasks_aggregate"})  # a booking's tasks, each batch
    handles = frozenset({
        BOOKING_HELD, BOOKING_CONFIRMED, BOOKING_EXPIRED, BOOKING_CHECKED_OUT,
        BOOKING_CHECKED_IN, BOOKING_CANCELLED,
        *_PAYMENT_EVENTS, *CHANGE_EVENTS, *SCHEDULE_EVENTS,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        timers = await _Timers.load(conn, {_booking(e) for e in events})
        for event in events:
            booking = event.stream_id
            if event.type in _PAYMENT_EVENTS:
                _deposit_timers(timers, event)
                continue
            if event.type in CHANGE_EVENTS:
                _change_timers(timers, event)
                continue
            if event.type in SCHEDULE_EVENTS:
                _instalment_timers(timers, event)
                continue
            if event.type == BOOKING_CHECKED_IN:
                due = datetime.fromisoformat(moved(event)["at"])
                # Only when a deposit hold is current (its lapse timer exists).
                if timers.has(booking, DEPOSIT_LAPSE):
                    timers.add(task_id(DEPOSIT_RELEASE, booking), DEPOSIT_RELEASE, booking, due)
            elif event.type in (BOOKING_CANCELLED, BOOKING_EXPIRED):
                timers.remove(task_id(DEPOSIT_AUTHORISE, booking))
            if event.type == BOOKING_HELD:
                _add(timers, EXPIRE_HOLD, booking, BOOKING_HELD.of(event)["hold_expires_at"])
            elif event.type == BOOKING_CONFIRMED:
                timers.remove(task_id(EXPIRE_HOLD, booking))
                _add(timers, CHECK_OUT, booking, BOOKING_CONFIRMED.of(event)["start"])
            elif event.type == BOOKING_CHECKED_OUT:
                timers.remove(task_id(CHECK_OUT, booking))
                _add(timers, CHECK_IN, booking, BOOKING_CHECKED_OUT.of(event)["end"])
            else:
                for kind in (EXPIRE_HOLD, CHECK_OUT, CHECK_IN):
                    timers.remove(task_id(kind, booking))
        await timers.write(conn)


class _Timers:
    """The due tasks of a batch's bookings, as the batch changes them.

    Every task id names its booking (``task_id(kind, booking[:...])``) and the row's
    ``aggregate_id`` is that booking, so reading the rows of the batch's bookings reads
    every row the batch can touch.
    """

    def __init__(self, rows: RowChanges, by_booking: dict[UUID, set[str]]) -> None:
        self._rows = rows
        self._by_booking = by_booking

    @classmethod
    async def load(cls, conn: asyncpg.Connection, bookings: set[UUID]) -> _Timers:
        found = await conn.fetch(
            f"SELECT id, kind, aggregate_id FROM {DUE_TASKS_TABLE}"
            " WHERE aggregate_id = ANY($1::uuid[])", list(bookings))
        by_booking: dict[UUID, set[str]] = {}
        for r in found:
            by_booking.setdefault(r["aggregate_id"], set()).add(r["id"])
        return cls(RowChanges(DUE_TASKS_TABLE, "id", {r["id"]: dict(r) for r in found}),
                   by_booking)

    def add(self, task: str, kind: str, booking: UUID, due: datetime) -> None:
        """Insert the timer unless it exists (ON CONFLICT DO NOTHING)."""
        self._rows.insert(task, {"kind": kind, "aggregate_id": booking, "due_at": due})
        self._by_booking.setdefault(booking, set()).add(task)

    def remove(self, task: str) -> None:
        self._rows.delete(task)

    def remove_kinds(self, booking: UUID, kinds: tuple[str, ...]) -> None:
        for task in self._ids(booking, kinds):
            self._rows.delete(task)

    def has(self, booking: UUID, kind: str) -> bool:
        return bool(self._ids(booking, (kind,)))

    def _ids(self, booking: UUID, kinds: tuple[str, ...]) -> list[str]:
        return [task for task in self._by_booking.get(booking, ())
                if (row := self._rows.get(task)) is not None and row["kind"] in kinds]

    async def write(self, conn: asyncpg.Connection) -> None:
        await self._rows.write(conn)


def _booking(event: RecordedEvent) -> UUID:
    if event.type in _PAYMENT_EVENTS or event.type in SCHEDULE_EVENTS:
        return uuid_of(_of_booking(event)["booking_id"])
    return event.stream_id


def _instalment_timers(timers: _Timers, event: RecordedEvent) -> None:
    booking = _booking(event)
    if event.type == PAYMENT_SCHEDULE_DEFAULTED:
        timers.remove_kinds(booking, INSTALMENT_TIMERS)
    elif event.type == PAYMENT_SCHEDULE_PLANNED:
        planned = PAYMENT_SCHEDULE_PLANNED.of(event)
        _add_instalments(timers, booking, planned.get("terms"),
                         ((i["number"], i["due_at"]) for i in planned["instalments"]
                          if i["number"] > 1))
    else:  # one instalment moved, paid, waived or split (into parts of their own)
        number = instalment_facts(event)["number"]
        for kind in INSTALMENT_TIMERS:
            timers.remove(task_id(kind, f"{booking}:{number}"))
        if event.type == PAYMENT_SCHEDULE_DUE_DATE_MOVED:
            due_moved = PAYMENT_SCHEDULE_DUE_DATE_MOVED.of(event)
            _add_instalments(timers, booking, due_moved.get("terms"),
                             [(number, due_moved["due_at"])])
        elif event.type == PAYMENT_SCHEDULE_INSTALMENT_SPLIT:
            split = PAYMENT_SCHEDULE_INSTALMENT_SPLIT.of(event)
            _add_instalments(timers, booking, split.get("terms"),
                             ((p["number"], p["due_at"]) for p in split["parts"]))


def _add_instalments(timers: _Timers, booking: UUID, terms_data: dict[str, Any] | None,
                     instalments: Iterable[tuple[int, str]]) -> None:
    """The timers of each instalment (its number, its due date), by the collection terms
    the schedule recorded."""
    terms = CollectionTerms.of(terms_data)
    offsets = {"instalment_remind": -timedelta(days=terms.reminder_days),
               "instalment_due": timedelta(0),
               "instalment_overdue": timedelta(hours=terms.alert_after_hours),
               "instalment_default": timedelta(days=terms.grace_days)}
    for number, due in instalments:
        for kind in INSTALMENT_TIMERS:
            timers.add(task_id(kind, f"{booking}:{number}"), kind, booking,
                       datetime.fromisoformat(due) + offsets[kind])


def _add(timers: _Timers, kind: str, booking: UUID, due: str) -> None:
    timers.add(task_id(kind, booking), kind, booking, datetime.fromisoformat(due))


def _change_timers(timers: _Timers, event: RecordedEvent) -> None:
    """A pending change lapses at its deadline; an applied one moves the lifecycle timer
    of its state to the new start (confirmed) or end (active)."""
    booking = event.stream_id
    if event.type == BOOKING_CHANGE_REQUESTED:
        requested = BOOKING_CHANGE_REQUESTED.of(event)
        timers.add(_change_lapse(booking, requested["number"]), CHANGE_LAPSE, booking,
                   datetime.fromisoformat(requested["expires_at"]))
    elif event.type == BOOKING_CHANGE_LAPSED:
        timers.remove(_change_lapse(booking, BOOKING_CHANGE_LAPSED.of(event)["number"]))
    else:
        changed = BOOKING_CHANGED.of(event)
        timers.remove(_change_lapse(booking, changed["number"]))
        if changed["state"] == "confirmed":
            timers.remove(task_id(CHECK_OUT, booking))
            _add(timers, CHECK_OUT, booking, changed["terms"]["start"])
        elif changed["state"] == "active":
            timers.remove(task_id(CHECK_IN, booking))
            _add(timers, CHECK_IN, booking, changed["terms"]["end"])


def _change_lapse(booking: UUID, number: int) -> str:
    return task_id(CHANGE_LAPSE, f"{booking}:{number}")


def _deposit_timers(timers: _Timers, event: RecordedEvent) -> None:
    booking = _booking(event)
    if event.type == PAYMENT_REFUND_REQUESTED:
        requested = PAYMENT_REFUND_REQUESTED.of(event)
        timers.add(task_id(REFUND_RETRY, f"{booking}:{requested['reference']}"),
                   REFUND_RETRY, booking, datetime.fromisoformat(requested["at"]))
    elif event.type in (PAYMENT_REFUNDED, PAYMENT_REFUND_FAILED):
        key = (PAYMENT_REFUNDED.of(event).get("key") if event.type == PAYMENT_REFUNDED
               else PAYMENT_REFUND_FAILED.of(event)["reference"])
        if key:
            timers.remove(task_id(REFUND_RETRY, f"{booking}:{key}"))
    elif event.type == PAYMENT_SUCCEEDED:
        # Paid through a provider: hold the deposit N days before the start (the
        # scheduler's delay); staff-confirmed (manual) payments take their deposit by hand.
        succeeded = PAYMENT_SUCCEEDED.of(event)
        start = succeeded.get("start")
        if start and succeeded.get("deposit_amount"):
            _add(timers, DEPOSIT_AUTHORISE, booking, start)
    elif event.type in (PAYMENT_DEPOSIT_AUTHORISED, PAYMENT_DEPOSIT_REAUTHORISED):
        held = (PAYMENT_DEPOSIT_AUTHORISED.of(event) if event.type == PAYMENT_DEPOSIT_AUTHORISED
                else PAYMENT_DEPOSIT_REAUTHORISED.of(event))
        n = int(held["sequence"])
        timers.remove(task_id(DEPOSIT_LAPSE, f"{booking}:{n - 1}"))
        for kind in (DEPOSIT_REAUTHORISE, DEPOSIT_LAPSE):
            timers.add(task_id(kind, f"{booking}:{n}"), kind, booking,
                       datetime.fromisoformat(held["expires_at"]))
    elif event.type in _DEPOSIT_ENDED:  # captured, released or lapsed
        timers.remove_kinds(booking, (DEPOSIT_REAUTHORISE, DEPOSIT_LAPSE))
