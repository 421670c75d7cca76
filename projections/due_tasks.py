"""The due-tasks process manager: timers of the booking lifecycle, built from events.

Held -> expire the hold at its deadline; Confirmed -> automatic check-out at the start;
CheckedOut -> automatic check-in at the end (the scheduler adds the configured delay,
2 h by default). Any later event of the booking removes the timers it made pointless.
Task ids are deterministic, so a replay or a rebuild never doubles a task.

A batch reads the timers of its bookings once, changes them in memory in event order (so a
check-in sees a deposit timer made earlier in the same batch) and writes them at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from midas.eventstore import RecordedEvent
from midas.scheduler import task_id
from projections.batch import RowChanges, uuid_of

DUE_TASKS_TABLE = "due_tasks"
EXPIRE_HOLD, CHECK_OUT, CHECK_IN = "expire_hold", "check_out", "check_in"
# Security deposit timers (payments, issue 5); the scheduler shifts them by settings
# (authorise N days before the start, re-authorise hours before the hold lapses, release
# hours after check-in). Holds are numbered, so each one has its own timers.
DEPOSIT_AUTHORISE, DEPOSIT_REAUTHORISE = "deposit_authorise", "deposit_reauthorise"
DEPOSIT_LAPSE, DEPOSIT_RELEASE = "deposit_lapse", "deposit_release"
REFUND_RETRY = "refund_retry"  # a safety net: the process manager refunds at once
DEPOSIT_EVENTS = (
    "Payment.RefundRequested", "Payment.Refunded", "Payment.RefundFailed",
    "Payment.DepositAuthorised", "Payment.DepositReauthorised", "Payment.DepositCaptured",
    "Payment.DepositReleased", "Payment.DepositLapsed",
)


class DueTasksProjector:
    name = "due_tasks"
    tables = (DUE_TASKS_TABLE,)
    # Written by the scheduler and the clock, not by events: `projections verify` skips them.
    unverified_columns = ("attempts", "last_error", "created_at")
    indexes_read = frozenset({"due_tasks_aggregate"})  # a booking's tasks, each batch
    handles = frozenset({
        "Booking.Held", "Booking.Confirmed", "Booking.Expired", "Booking.CheckedOut",
        "Booking.CheckedIn", "Booking.Cancelled",
        "Payment.Succeeded", *DEPOSIT_EVENTS,
    })

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        timers = await _Timers.load(conn, {_booking(e) for e in events})
        for event in events:
            booking, d = event.stream_id, event.data
            if event.type.startswith("Payment."):
                _deposit_timers(timers, event)
                continue
            if event.type == "Booking.CheckedIn":
                due = datetime.fromisoformat(d["at"])
                # Only when a deposit hold is current (its lapse timer exists).
                if timers.has(booking, DEPOSIT_LAPSE):
                    timers.add(task_id(DEPOSIT_RELEASE, booking), DEPOSIT_RELEASE, booking, due)
            elif event.type in ("Booking.Cancelled", "Booking.Expired"):
                timers.remove(task_id(DEPOSIT_AUTHORISE, booking))
            if event.type == "Booking.Held":
                _add(timers, EXPIRE_HOLD, booking, d["hold_expires_at"])
            elif event.type == "Booking.Confirmed":
                timers.remove(task_id(EXPIRE_HOLD, booking))
                _add(timers, CHECK_OUT, booking, d["start"])
            elif event.type == "Booking.CheckedOut":
                timers.remove(task_id(CHECK_OUT, booking))
                _add(timers, CHECK_IN, booking, d["end"])
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
    return uuid_of(event.data["booking_id"]) if event.type.startswith("Payment.") else (
        event.stream_id)


def _add(timers: _Timers, kind: str, booking: UUID, due: str) -> None:
    timers.add(task_id(kind, booking), kind, booking, datetime.fromisoformat(due))


def _deposit_timers(timers: _Timers, event: RecordedEvent) -> None:
    booking, d = uuid_of(event.data["booking_id"]), event.data
    if event.type == "Payment.RefundRequested":
        timers.add(task_id(REFUND_RETRY, f"{booking}:{d['reference']}"), REFUND_RETRY,
                   booking, datetime.fromisoformat(d["at"]))
    elif event.type in ("Payment.Refunded", "Payment.RefundFailed"):
        key = d.get("key") if event.type == "Payment.Refunded" else d["reference"]
        if key:
            timers.remove(task_id(REFUND_RETRY, f"{booking}:{key}"))
    elif event.type == "Payment.Succeeded":
        # Paid through a provider: hold the deposit N days before the start (the
        # scheduler's delay); staff-confirmed (manual) payments take their deposit by hand.
        if d.get("start") and d.get("deposit_amount"):
            _add(timers, DEPOSIT_AUTHORISE, booking, d["start"])
    elif event.type in ("Payment.DepositAuthorised", "Payment.DepositReauthorised"):
        n = int(d["sequence"])
        timers.remove(task_id(DEPOSIT_LAPSE, f"{booking}:{n - 1}"))
        for kind in (DEPOSIT_REAUTHORISE, DEPOSIT_LAPSE):
            timers.add(task_id(kind, f"{booking}:{n}"), kind, booking,
                       datetime.fromisoformat(d["expires_at"]))
    elif event.type.startswith("Payment.Deposit"):  # captured, released or lapsed
        timers.remove_kinds(booking, (DEPOSIT_REAUTHORISE, DEPOSIT_LAPSE))
