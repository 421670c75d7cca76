"""Changes to a booking: another start or end, another item, another service level.

`POST /api/v1/bookings/{id}/changes` prices the proposed terms by the rules in force now,
beside the current ones, and says what the change costs (or refunds) and whether it can be
applied now. With `"apply": true` it is applied:

- a held booking (nothing paid, no payment asked for yet) takes its new terms at once;
- a paid booking whose change costs nothing more takes them at once, and the part given up
  is refunded by the cancellation table on its notice (the process manager asks for it);
- a paid booking whose change costs more keeps its current terms while the new window is
  held for it (an item occupation named by the change) and a PaymentIntent asks for the
  difference (key `booking:<id>:change:<n>:v1`). Paid, the change takes effect; unpaid
  after the hold window, it lapses: the hold is released and the booking is as it was.

The item is the consistency boundary: the new occupation is taken and the old one released
in one append (`Item.move`), so a booking never loses its slot and never holds two; a
competitor racing for the same window finds it taken and is refused, and so is a change
finding the window taken (409 naming the busy window).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from commands.bookings import _unavailable, customer_tier, extra_full
from commands.deposits import release_deposit
from commands.extras import Ledgers
from commands.payment_store import payment_of, reference_statement
from commands.points import points_value
from commands.quotes import ExtraIn, load_item, price
from midas.domain.accounts import Account
from midas.domain.booking_rules import PointsPayment
from midas.domain.bookings import Booking
from midas.domain.catalogue import Catalogue, ServiceLevel
from midas.domain.errors import DomainError, InvalidState, RuleViolation
from midas.domain.extras import ExtraFull, ExtrasCatalogue, stay_days
from midas.domain.inventory import Item, Unavailable
from midas.domain.lifecycle import BookingState
from midas.domain.payments import Payment, payment_id
from midas.domain.pricing import Quote, effective_service_level
from midas.domain.refunds import refund_amount, refund_percentage
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import Principal, current_principal
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.fields import Instant
from midas.http.keys import CLOCK, REPOSITORY, STRIPE
from midas.http.problems import Problem
from midas.payment_providers.stripe_gateway import GatewayError, Intent, StripeGateway
from midas.policy import current_extras, current_policy, current_rules

log = logging.getLogger(__name__)
api = Api(tag="bookings", kind="command")
Clock = Callable[[], datetime]
CHANGEABLE = (BookingState.HELD, BookingState.CONFIRMED, BookingState.ACTIVE)


class ProposeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Instant | None = None
    end: Instant | None = None
    item_id: UUID | None = Field(None, description="Another item (any category).")
    service_level: ServiceLevel | None = None
    points: int | None = Field(
        None, ge=1, le=1_000_000_000,
        description="Loyalty points towards a difference to pay on a paid booking (by"
                    " default 100 points = 1 unit; all the booking's points at most 20 % of"
                    " its rental: the booking rules in force).")
    extras: list[ExtraIn] | None = Field(
        None, max_length=20,
        description="The booking's extras after the change, each its own line: [] gives"
                    " them all up; absent, the current ones are kept (priced for the new"
                    " terms).")
    apply: bool = Field(False, description="Apply the change now (else only price it).")

    @model_validator(mode="after")
    def _something(self) -> ProposeChange:
        if self.start is None and self.end is None and self.item_id is None and (
                self.service_level is None) and self.extras is None:
            raise ValueError("propose a new start, end, item, service level or extras")
        return self


@dataclass
class Proposal:
    booking: Booking
    item: Item
    terms: dict[str, Any]
    difference: int
    refund_percentage: str
    refund_amount: int
    paid: int
    reasons: list[str]
    busy: Unavailable | None = None
    ledgers: Ledgers | None = None  # the extras' capacity ledgers (None: no extras at all)
    extras: ExtrasCatalogue | None = None
    full: ExtraFull | None = None  # an extra chosen with no place left on a day

    @property
    def same_item(self) -> bool:
        return self.terms["item_id"] == self.booking.item_id

    @property
    def days(self) -> list[Any]:
        """The local days the new terms' extras count."""
        quote = self.terms["quote"]
        return stay_days(datetime.fromisoformat(self.terms["start"]),
                         datetime.fromisoformat(self.terms["end"]),
                         ZoneInfo(quote["time_zone"]))

    @property
    def codes(self) -> list[str]:
        return [line["code"] for line in self.terms["quote"].get("extras", [])]

    def answer(self) -> dict[str, Any]:
        old, new = self.booking.quote, self.terms["quote"]
        return {
            "booking_id": str(self.booking.id), "status": self.booking.state,
            "current": _summary(self.booking.terms()), "proposed": _summary(self.terms),
            "difference": self.difference, "to_pay": max(self.difference, 0),
            "refund": {"percentage": self.refund_percentage, "amount": self.refund_amount},
            "currency": new["currency"], "applicable": not self.reasons,
            "reasons": self.reasons, "lines": {"current": old["lines"], "proposed": new["lines"]},
            "extras": {"current": old.get("extras", []), "proposed": new.get("extras", [])},
            "busy": [{"start": o.interval.start.isoformat(), "end": o.interval.end.isoformat()}
                     for o in (self.busy.conflicts if self.busy else [])],
        }


def _summary(terms: dict[str, Any]) -> dict[str, Any]:
    q = terms["quote"]
    return {"item_id": terms["item_id"], "start": terms["start"], "end": terms["end"],
            "service_level": terms["service_level"],
            "delivered_level": terms["delivered_level"],
            "quote": {**{k: q[k] for k in ("rental", "insurance", "tax", "total_due",
                                           "security_deposit", "currency")},
                      "extras_total": q.get("extras_total", 0),
                      "pass_through": q.get("pass_through", 0)}}


async def propose(repo: Repository, clock: Clock, booking_id: UUID,
                  principal: Principal, cmd: ProposeChange, *, exclusive: bool = False
                  ) -> Proposal:
    """Price the change and check every rule; `reasons` says why it cannot apply now."""
    booking = await repo.get(booking_id, cls=Booking, exclusive=exclusive)
    if not principal.is_staff and booking.customer_id != str(principal.account_id):
        raise web.HTTPNotFound()
    now = clock()
    if booking.status not in CHANGEABLE:
        raise InvalidState("the booking", booking.state, "be changed")
    start = cmd.start or booking.starts_at
    end = cmd.end or booking.ends_at
    if end <= start:
        raise Problem(422, "The end must be after the start.", title="Invalid request",
                      errors=[{"field": "body.end", "message": "end must be after start",
                               "type": "value_error"}])
    item_id = cmd.item_id or UUID(booking.item_id)
    level = cmd.service_level or ServiceLevel(booking.service_level)
    reasons: list[str] = []
    if booking.status is BookingState.ACTIVE and (
            start != booking.starts_at or item_id != UUID(booking.item_id)
            or level.value != booking.service_level):
        raise DomainError("an active booking may only move its end")
    hours = (await current_rules(repo)).change_notice_hours
    extending_active = booking.status is BookingState.ACTIVE and end > booking.ends_at
    if (not principal.is_staff and not extending_active
            and booking.starts_at - now < timedelta(hours=hours)):
        raise Problem(403, f"Customers change a booking until {hours} hours before its"
                           " start; your concierge can still change it.",
                      title="Too late to change")
    if booking.pending_change is not None:
        reasons.append("a change is awaiting its payment")
    item = await load_item(repo, item_id, "body.item_id", exclusive=exclusive)
    catalogue, _ = await current_policy(repo)
    chosen = _current_extras(booking) if cmd.extras is None else cmd.extras
    ledgers = extras = full = None
    if chosen or booking.quote.get("extras"):
        extras = await current_extras(repo)
    quote = _priced(item, start, end, level, catalogue, chosen, extras,
                    kept=cmd.extras is None)
    if extras is not None:
        ledgers = Ledgers(repo, exclusive=exclusive)
        days = stay_days(start, end, ZoneInfo(quote.time_zone))
        full = await ledgers.first_full(extras, item.location, days,
                                        [e["code"] for e in chosen], beside=booking.id)
        if full is not None:
            reasons.append(str(full))
    tier = await customer_tier(repo, UUID(booking.customer_id))
    terms = {"item_id": str(item.id), "start": start.isoformat(), "end": end.isoformat(),
             "service_level": level.value,
             "delivered_level": effective_service_level(level, tier).value,
             "quote": quote.to_dict()}
    difference = quote.total_due - int(booking.quote["total_due"])
    percentage, refund = "0", 0
    paid = booking.amount_paid if booking.status is not BookingState.HELD else 0
    if difference < 0 and paid > 0:
        percentage, refund = _decrease_refund(booking, catalogue, start, end, -difference, now)
    if booking.status is BookingState.HELD and await payment_of(repo, booking_id) is not None:
        reasons.append("a payment was asked for this hold: pay it, then change the booking")
    busy = None
    try:
        _check_window(item, booking, start, end, now)
    except Unavailable as exc:
        busy = exc
        reasons.append(str(exc) if principal.is_staff else "the item is not free then")
    return Proposal(booking, item, terms, difference, percentage, refund, paid, reasons, busy,
                    ledgers, extras, full)


def _current_extras(booking: Booking) -> list[ExtraIn]:
    """The booking's extras as chosen, to price again for new terms."""
    return [ExtraIn(code=line["code"], quantity=int(line["quantity"]), zone=line.get("zone"))
            for line in booking.quote.get("extras", [])]


def _priced(item: Item, start: datetime, end: datetime, level: ServiceLevel,
            catalogue: Catalogue, chosen: list[ExtraIn], extras: ExtrasCatalogue | None, *,
            kept: bool) -> Quote:
    """The new terms priced with their extras; an extra the booking keeps that the new
    item is not offered with is a 422 asking for the extras to keep."""
    try:
        return price(item, start, end, level, catalogue, chosen, extras)
    except Problem as exc:  # price's only refusal: an extra it cannot price
        if not kept:
            raise
        raise Problem(422, f"the booking's extras do not all go with this change"
                           f" ({exc.detail}): say which to keep in `extras`",
                      title="Invalid request", errors=[
                          {"field": "body.extras", "message": exc.detail or "",
                           "type": "extras_required"}]) from None


def _decrease_refund(booking: Booking, catalogue: Catalogue, start: datetime, end: datetime,
                     given_up: int, now: datetime) -> tuple[str, int]:
    """The cancellation table applied to what is given up, on the notice of that part: a
    shortened end gives up time from the new end, anything else from the current start."""
    begins = end if start == booking.starts_at and end < booking.ends_at else booking.starts_at
    percentage = refund_percentage(booking.category, begins - now, catalogue)
    return str(percentage), refund_amount(given_up, percentage)


def _check_window(item: Item, booking: Booking, start: datetime, end: datetime,
                  now: datetime) -> None:
    started = booking.status is BookingState.ACTIVE
    item.free_for_change(booking.id, f"{booking.id}:change", start, end, now, started)


def _points_for_change(booking: Booking, proposal: Proposal, points: int,
                       rule: PointsPayment) -> int:
    """The value of `points` towards the difference: all the booking's points together at
    most the share of the new rental, and some money left to pay."""
    value = points_value(points, proposal.terms["quote"]["currency"],
                         rule.points_per_unit)
    cap = int((Decimal(int(proposal.terms["quote"]["rental"]))
               * rule.max_share).to_integral_value(ROUND_FLOOR))
    if booking.points_credit + value > cap:
        raise RuleViolation(f"points may pay at most {cap} of this rental in all")
    if value >= proposal.difference:
        raise RuleViolation("points pay part of the difference: some of it is paid in money")
    return value


def change_hold_id(booking_id: UUID, number: int) -> str:
    return f"{booking_id}:change:{number}"


async def apply_change(
    repo: Repository, gateway: StripeGateway, clock: Clock, booking_id: UUID,
    principal: Principal, cmd: ProposeChange, metadata: dict[str, Any],
) -> tuple[dict[str, Any], AppendResult, Intent | None]:
    """Apply now, or hold the new window and ask for the difference (see the module)."""
    intent: Intent | None = None

    async def attempt() -> tuple[dict[str, Any], AppendResult]:
        nonlocal intent
        proposal = await propose(repo, clock, booking_id, principal, cmd,
                                 exclusive=True)
        if proposal.busy is not None:
            raise proposal.busy
        if proposal.full is not None:
            raise proposal.full
        if proposal.reasons:
            raise DomainError("the change cannot be applied now: "
                              + "; ".join(proposal.reasons))
        booking, item, now = proposal.booking, proposal.item, clock()
        started = booking.status is BookingState.ACTIVE
        start = datetime.fromisoformat(proposal.terms["start"])
        end = datetime.fromisoformat(proposal.terms["end"])
        if cmd.points and not (proposal.difference > 0 and proposal.paid > 0):
            raise Problem(422, "Points pay towards a change that costs more on a paid"
                               " booking (a hold takes them with POST .../points).",
                          title="Invalid request", errors=[{
                              "field": "body.points", "message": "not for this change",
                              "type": "value_error"}])
        if proposal.difference > 0 and proposal.paid > 0:
            number = booking.changes_made + 1
            points, value = cmd.points or 0, 0
            aggregates: list[Any] = [item, booking]
            if points:
                value = _points_for_change(booking, proposal, points,
                                           (await current_rules(repo)).points)
                account = await repo.get(UUID(booking.customer_id), cls=Account,
                                         exclusive=True)
                account.reserve_points(f"{booking.id}:change:{number}", points, value)
                aggregates.append(account)
            if intent is None:
                intent = await gateway.create_intent(
                    amount=proposal.difference - value,
                    currency=proposal.terms["quote"]["currency"],
                    key=f"booking:{booking.id}:change:{number}:v1",
                    metadata={"booking_id": str(booking.id), "kind": "change",
                              "change": str(number)})
            parts = money_parts(booking.quote, proposal.terms["quote"],
                                proposal.difference - value, proposal.difference)
            if parts is not None:  # its payment records the extras it pays for
                payment = await repo.get(payment_id(booking.id), cls=Payment, exclusive=True)
                payment.ask(intent.id, proposal.difference - value, "change", now,
                            parts=parts, owed=False)
                aggregates.append(payment)
            catalogue, _ = await current_policy(repo)
            hold = change_hold_id(booking.id, number)
            item.take_for_change(hold, booking.id, start, end, now, started=started)
            if proposal.ledgers is not None and proposal.extras is not None:
                # The new days held for the change beside the booking's own places.
                await proposal.ledgers.take(proposal.extras, hold, item.location,
                                            proposal.days, proposal.codes, now,
                                            beside=booking.id)
                aggregates += proposal.ledgers.changed()
            booking.request_change(proposal.terms, proposal.difference, intent.id, hold, now,
                                   now + catalogue.hold_expiry, points=points,
                                   points_value=value)
            result = await repo.save(*aggregates, metadata=metadata, statements=(
                reference_statement(intent.id, booking.id),))
            return {**proposal.answer(), "state": "awaiting_payment", "number": number,
                    "points": points, "points_value": value,
                    "to_pay": proposal.difference - value,
                    "expires_at": (booking.pending_change or {})["expires_at"]}, result
        aggregates = [booking]
        if proposal.same_item:
            item.move_booking(booking.id, start, end, now, started=started)
            aggregates.append(item)
        else:
            old = await repo.get(UUID(booking.item_id), cls=Item, exclusive=True)
            item.move_booking(booking.id, start, end, now, started=started)
            old.release(booking.id, "changed", now)
            aggregates += [old, item]
        if proposal.ledgers is not None and proposal.extras is not None:
            await proposal.ledgers.release(booking.id, booking.quote)
            await proposal.ledgers.take(proposal.extras, booking.id, item.location,
                                        proposal.days, proposal.codes, now)
            aggregates += proposal.ledgers.changed()
        number = booking.apply_change(proposal.terms, proposal.difference, now,
                                      refund_amount=proposal.refund_amount,
                                      refund_percentage=proposal.refund_percentage)
        result = await repo.save(*aggregates, metadata=metadata)
        return {**proposal.answer(), "state": "applied", "number": number}, result

    answer, result = await retry_on_conflict(attempt)
    return answer, result, intent


# -- the changes process manager and its timer ---------------------------------------------


async def settle_change(repo: Repository, clock: Clock, booking_id: UUID, reference: str,
                        amount: int, metadata: dict[str, Any]) -> object:
    """A payment succeeded: if it pays the pending change, the change takes effect; if it
    pays a change that lapsed meanwhile, it is refunded in full."""

    async def attempt() -> object:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        pending, now = booking.pending_change, clock()
        if pending is not None and pending["payment_reference"] == reference:
            terms = pending["terms"]
            start, end = (datetime.fromisoformat(terms["start"]),
                          datetime.fromisoformat(terms["end"]))
            item = await repo.get(UUID(terms["item_id"]), cls=Item, exclusive=True)
            started = booking.status is BookingState.ACTIVE
            item.move_booking(booking.id, start, end, now, started=started,
                              replacing=pending["hold_id"])
            aggregates: list[Any] = [booking, item]
            if terms["item_id"] != booking.item_id:
                old = await repo.get(UUID(booking.item_id), cls=Item, exclusive=True)
                old.release(booking.id, "changed", now)
                aggregates.append(old)
            ledgers = Ledgers(repo)
            await ledgers.release(booking.id, booking.quote)
            await ledgers.hand_over(pending["hold_id"], booking.id, terms["quote"],
                                    stay_days(start, end, ZoneInfo(terms["quote"]["time_zone"])),
                                    now)
            aggregates += ledgers.changed()
            booking.apply_change(terms, pending["difference"], now, paid=amount,
                                 number=pending["number"],
                                 points=int(pending.get("points") or 0),
                                 points_value=int(pending.get("points_value") or 0))
            return await repo.save(*aggregates, metadata=metadata)
        if reference in booking.lapsed_change_payments:
            payment = await payment_of(repo, booking_id)
            key = f"booking:{booking_id}:refund:change:{reference}:v1"
            if payment is None or key in payment.refunds_requested:
                return None
            payment.request_refund(key, min(amount, payment.refundable),
                                   "paid after the change lapsed", now)
            return await repo.save(payment, metadata=metadata)
        return None

    return await retry_on_conflict(attempt)


def money_parts(old: Mapping[str, Any], new: Mapping[str, Any], amount: int, difference: int
                ) -> dict[str, int] | None:
    """What of `amount` (paid or refunded towards a change's `difference`) is extras and
    pass-through money, when the change moves them (None: in proportion, as any payment):
    their change between the quotes, in the proportion of `amount` to the difference."""
    moved = {name: abs(int(new.get(name, 0)) - int(old.get(name, 0)))
             for name in ("extras_total", "pass_through")}
    if not any(moved.values()) or difference == 0:
        return None
    share = Decimal(abs(amount)) / abs(difference)
    return {"extras" if name == "extras_total" else name:
            int((value * share).to_integral_value(ROUND_HALF_UP))
            for name, value in moved.items()}


async def refund_change(repo: Repository, clock: Clock, booking_id: UUID, number: int,
                        amount: int, metadata: dict[str, Any],
                        parts: Callable[[int], dict[str, int] | None] = lambda _: None
                        ) -> object:
    """Ask for the part of a change given up; `parts`: what of a refund of so much is
    extras and pass-through money."""

    async def attempt() -> object:
        payment = await payment_of(repo, booking_id)
        key = f"booking:{booking_id}:refund:change:{number}:v1"
        if payment is None or key in payment.refunds_requested:
            return None
        refundable = min(amount, payment.refundable)
        if refundable <= 0:
            return None
        payment.request_refund(key, refundable, "change: the part given up", clock(),
                               parts=parts(refundable))
        return await repo.save(payment, metadata=metadata)

    return await retry_on_conflict(attempt)


async def lapse_change(repo: Repository, booking_id: UUID, now: datetime,
                       metadata: dict[str, Any]) -> object:
    """The difference was not paid in time: the hold goes, the booking is as it was."""

    async def attempt() -> object:
        booking = await repo.get(booking_id, cls=Booking, exclusive=True)
        pending = booking.pending_change
        if pending is None or now < datetime.fromisoformat(pending["expires_at"]):
            return None
        item = await repo.get(UUID(pending["terms"]["item_id"]), cls=Item, exclusive=True)
        item.release(pending["hold_id"], "change lapsed", now)
        ledgers = Ledgers(repo)
        await ledgers.release(pending["hold_id"], pending["terms"]["quote"])
        booking.lapse_change(pending["number"], now)
        return await repo.save(booking, item, *ledgers.changed(), metadata=metadata)

    return await retry_on_conflict(attempt)


async def follow_deposit(repo: Repository, gateway: StripeGateway, settings: Any,
                         booking_id: UUID, old: int, new: int, now: datetime,
                         metadata: dict[str, Any]) -> object:
    """A change altered the deposit: a current hold is released and the new amount held
    again on the same card (key `booking:<id>:deposit:auth:<n>:v1`). Without a current
    hold there is nothing to do: the hold placed later reads the booking's new quote."""
    payment = await payment_of(repo, booking_id)
    if old == new or payment is None or payment.deposit_state != "authorised":
        return None
    n = payment.deposit_authorisations + 1
    await release_deposit(repo, gateway, booking_id, now, "the booking changed its deposit",
                          metadata)
    if new <= 0:
        return None
    intent = await gateway.create_intent(
        amount=new, currency=payment.currency, key=f"booking:{booking_id}:deposit:auth:{n}:v1",
        metadata={"booking_id": str(booking_id), "kind": "deposit"}, manual_capture=True,
        confirm=True, payment_method=payment.payment_method)
    if intent.status != "requires_capture":
        raise GatewayError(f"deposit not authorised again (status {intent.status})")

    async def attempt() -> object:
        fresh = await repo.get(payment.id, cls=Payment)
        if not fresh.authorise_deposit(intent.id, new, now,
                                       timedelta(days=settings.deposit_hold_days), again=True):
            return None
        return await repo.save(fresh, metadata=metadata,
                               statements=(reference_statement(intent.id, booking_id),))

    return await retry_on_conflict(attempt)


# -- HTTP ----------------------------------------------------------------------------------


class ChangeAnswer(BaseModel):
    """A change priced beside the booking's current terms (amounts in minor units of
    `currency`); once applied, also its log `position`, and the `payment` to make when the
    change costs more (202)."""

    booking_id: str
    status: str
    current: dict[str, Any]
    proposed: dict[str, Any]
    difference: int = Field(description="Positive: to pay; negative: given up.")
    to_pay: int
    refund: dict[str, Any]
    currency: str
    applicable: bool
    reasons: list[Any]
    lines: dict[str, Any]
    extras: dict[str, Any] = Field(description="The extras' lines, current and proposed.")
    busy: list[dict[str, str]]
    position: int | None = None
    payment: dict[str, Any] | None = None


@api.post("/api/v1/bookings/{id}/changes", body=ProposeChange, status=200,
          response=ChangeAnswer,
          problems={403: "Too late for the customer to change",
                    409: "Not available, or an extra fully booked",
                    402: "The payment provider declined", 502: "The payment provider failed"},
          summary="Propose a change (new dates, item or service level), priced; apply it")
async def post_change(request: web.Request, body: ProposeChange) -> web.Response:
    principal = current_principal(request)
    if principal is None:
        raise Problem(401, "Sign in to do this.")
    app, booking_id = request.app, path_uuid(request)
    if not body.apply:
        proposal = await propose(app[REPOSITORY], app[CLOCK], booking_id, principal, body)
        return web.json_response(proposal.answer())
    try:
        answer, result, intent = await apply_change(
            app[REPOSITORY], app[STRIPE], app[CLOCK], booking_id, principal, body,
            command_metadata(request))
    except Unavailable as exc:
        raise _unavailable(exc, principal) from None
    except ExtraFull as exc:
        raise extra_full(exc) from None
    except GatewayError as exc:
        raise Problem(402 if exc.declined else 502, str(exc),
                      title="Payment provider error") from None
    if intent is not None:
        answer["payment"] = {"provider": "stripe", "payment_intent": intent.id,
                             "client_secret": intent.client_secret or "",
                             "amount": answer["to_pay"]}
    return command_response(result, answer, status=200 if intent is None else 202)
