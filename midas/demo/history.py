"""A year of the demo business, lived through the service's routes on a moved clock.

The clock starts `months` ago. An agenda of dated actions (booking rounds, cancellations,
damages, goodwill refunds, disputes) is played in time order; between two actions the
clock stops at every timer the service set itself (hold expiry, check-out, check-in,
deposit holds and releases, reminders) and the scheduler runs it then, so every event is
dated as if it had happened in real time. Choices come from a seeded random generator:
the same business every time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import hmac
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from midas.demo.business import CUSTOMERS, Fleet, Person
from midas.demo.client import Client, DemoError
from midas.domain.booking_events import BOOKING_CONFIRMED
from midas.domain.catalogue import DEFAULT_CATALOGUE
from midas.domain.payment_events import PAYMENT_FAILED, PAYMENT_SUCCEEDED
from midas.http.keys import DATABASE, NOTIFICATIONS, SCHEDULER, SETTINGS
from midas.scheduler import ManualClock

SEED = 2026
PAID_CARD, DECLINED_CARD = "pm_card_visa", "pm_card_chargeCustomerFail"
# How often each tier books, and what: a year of it keeps most customers in their tier
# (the tiers rise by spend: premium from $100,000, vvip from $500,000).
BOOKING_WEIGHTS = {"standard": 2, "premium": 3, "vvip": 8}
CATEGORY_WEIGHTS = {
    "standard": {"car": 1, "yacht": 0, "property": 0, "jet": 0},
    "premium": {"car": 14, "yacht": 4, "property": 1, "jet": 0},
    "vvip": {"car": 2, "yacht": 4, "property": 3, "jet": 3},
}
DURATIONS = {  # (shortest, longest) in hours, per category
    "car": (24, 5 * 24), "yacht": (4, 10), "jet": (2, 8), "property": (3 * 24, 9 * 24)}
SETTLE_TIMEOUT_S = 60.0
# What writes the timers (due tasks, reminders) and the process managers, which append
# events of their own: the demo waits for them before it moves the clock on.
TIMER_KEEPERS = ["due_tasks", "notifications", "payments_process", "loyalty"]


@dataclass(order=True)
class Action:
    at: datetime
    order: int
    run: Callable[[], Awaitable[None]] = field(compare=False)


@dataclass
class Booked:
    id: str
    customer: Person
    item: Fleet
    start: datetime
    end: datetime
    total: int
    currency: str
    level: str


@dataclass
class Tally:
    bookings: Counter[str] = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        self.bookings[what] += n


class History:
    def __init__(self, app: web.Application, client: Client, clock: ManualClock,
                 tokens: dict[str, str], accounts: dict[str, str],
                 items: list[tuple[str, Fleet]], *, start: datetime, end: datetime) -> None:
        self.app, self.client, self.clock = app, client, clock
        self.tokens, self.accounts, self.items = tokens, accounts, items
        self.start, self.end = start, end
        self.random = random.Random(SEED)
        self.agenda: list[Action] = []
        self._order = itertools.count()
        self.tally = Tally()
        self.paid = 0

    # -- the agenda --------------------------------------------------------------------

    def plan(self, at: datetime, run: Callable[[], Awaitable[None]]) -> None:
        heapq.heappush(self.agenda, Action(at, next(self._order), run))

    async def live(self) -> Tally:
        """Plan the booking rounds, then play every action at its time."""
        at = self.start + timedelta(days=1)
        while at < self.end - timedelta(days=2):
            moment = at.replace(hour=self.random.randint(8, 20), minute=self.random.choice(
                (0, 10, 20, 30, 40, 50)), second=0, microsecond=0)
            self.plan(moment, functools.partial(self.booking_round, moment, 2, 5))
            at += timedelta(days=self.random.uniform(3.5, 5.0))
        today = todays_round(self.end)
        self.plan(today, lambda: self.booking_round(today, 3, 3))
        self.plan(self.end - timedelta(minutes=10), self.last_holds)
        while self.agenda and self.agenda[0].at <= self.end:  # the rest is still to come
            action = heapq.heappop(self.agenda)
            await self.run_timers_until(action.at)
            await action.run()
        await self.run_timers_until(self.end)
        await self.settle(everything=True)
        return self.tally

    # -- time ----------------------------------------------------------------------------

    async def run_timers_until(self, target: datetime) -> None:
        """Move the clock to `target`, stopping at each timer on the way to run it."""
        scheduler, notifications = self.app[SCHEDULER], self.app[NOTIFICATIONS]
        await self.settle()
        while True:
            task, reminder = await scheduler.next_due(), await notifications.next_reminder()
            due = min((d for d in (task, reminder) if d is not None), default=None)
            if due is None or due > target:
                break
            self.clock.set(max(due, self.clock()))
            if task is not None and task <= due:
                while await scheduler.run_due():
                    pass
            if reminder is not None and reminder <= due:
                await notifications.run_once()
            await self.settle()  # what ran may have set the next timers
        self.clock.set(max(target, self.clock()))

    async def settle(self, everything: bool = False) -> None:
        """Until the projections that set timers and the process managers (or, with
        `everything`, every read model too) have taken in the whole log. The others catch
        up meanwhile: no command of the demo reads them."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        async with self.app[DATABASE].acquire() as conn:
            while True:
                head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")
                behind = await conn.fetchval(
                    "SELECT count(*) FROM projection_checkpoints WHERE position < $1"
                    " AND ($2 OR name = ANY($3::text[]))", head, everything, TIMER_KEEPERS)
                if not behind:
                    return
                if time.monotonic() > deadline:
                    raise DemoError("the read models did not catch up with the log")
                await asyncio.sleep(0.01)

    # -- booking rounds ------------------------------------------------------------------

    async def booking_round(self, now: datetime, fewest: int, most: int) -> None:
        paid: list[Booked] = []
        declined: list[Booked] = []
        for _ in range(self.random.randint(fewest, most)):
            booked = await self.hold(now, lead_days=(2.0, 45.0))
            if booked is None:
                continue
            roll = self.random.random()
            story = HOLD_STORIES.get(self.tally.bookings["held"])  # even a short history
            if story == "declined" or (story is None and 0.07 <= roll < 0.11):
                await self.pay(booked, DECLINED_CARD, ok=(402,))
                declined.append(booked)
            elif story == "unpaid" or roll < 0.07:
                self.tally.add("left unpaid")  # the hold expires by itself
            else:
                await self.pay(booked, PAID_CARD)
                paid.append(booked)
        await self.wait_for_stripe(paid, declined)
        for booked in paid:
            await self.after_payment(booked, now)

    async def last_holds(self) -> None:
        """Two holds placed minutes ago: still waiting for their payment."""
        for _ in range(2):
            if await self.hold(self.clock(), lead_days=(5.0, 30.0)) is not None:
                self.tally.add("held, awaiting payment")

    async def hold(self, now: datetime, lead_days: tuple[float, float]) -> Booked | None:
        customer = self.random.choices(
            CUSTOMERS, [BOOKING_WEIGHTS[c.tier] for c in CUSTOMERS])[0]
        weights = CATEGORY_WEIGHTS[customer.tier]
        category = self.random.choices(list(weights), list(weights.values()))[0]
        item_id, item = self.random.choice([i for i in self.items if i[1].category == category])
        start = (now + timedelta(days=self.random.uniform(*lead_days))).replace(
            hour=self.random.choice((9, 10, 12, 14, 16)), minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=self.random.randint(*DURATIONS[category]))
        level = self._level(customer)
        status, body = await self.client.call(
            "POST", "/api/v1/bookings", self.tokens[customer.key], ok=(201, 409),
            json={"item_id": item_id, "start": start.isoformat(), "end": end.isoformat(),
                  "service_level": level})
        if status == 409:  # taken: the customer picks another day next time
            self.tally.add("refused (item taken)")
            return None
        self.tally.add("held")
        quote = body["quote"]
        return Booked(body["id"], customer, item, start, end, quote["total_due"],
                      quote["currency"], level)

    def _level(self, customer: Person) -> str:
        if customer.tier == "vvip":
            return self.random.choice(("vvip", "vvip", "premium"))
        if customer.tier == "premium":
            return self.random.choice(("premium", "standard", "standard"))
        return self.random.choice(("standard",) * 6 + ("premium",))

    async def pay(self, booked: Booked, card: str, ok: tuple[int, ...] = (200,)) -> None:
        await self.client.call("POST", f"/api/v1/bookings/{booked.id}/payments/confirm",
                               self.tokens[booked.customer.key], ok=ok,
                               json={"payment_method": card})

    async def wait_for_stripe(self, paid: list[Booked], declined: list[Booked]) -> None:
        """Stripe (the local one) reports each outcome by webhook about a second later;
        the clock waits for them, so they are dated at the round."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        waiting = {b.id: "confirmed" for b in paid} | {b.id: "failed" for b in declined}
        while waiting:
            async with self.app[DATABASE].acquire() as conn:
                confirmed = {str(r[0]) for r in await conn.fetch(
                    "SELECT stream_id FROM events WHERE type = $2"
                    " AND stream_id = ANY($1::uuid[])", list(waiting), BOOKING_CONFIRMED)}
                failed = {r[0] for r in await conn.fetch(
                    "SELECT data->>'booking_id' FROM events WHERE type = $2"
                    " AND data->>'booking_id' = ANY($1::text[])", list(waiting),
                    PAYMENT_FAILED)}
            for booking, outcome in list(waiting.items()):
                if booking in (confirmed if outcome == "confirmed" else failed):
                    del waiting[booking]
                    self.tally.add("paid" if outcome == "confirmed" else "card declined")
            if waiting and time.monotonic() > deadline:
                raise DemoError("the local Stripe did not report the round's payments")
            if waiting:
                await asyncio.sleep(0.1)

    # -- what happens to a paid booking ----------------------------------------------------

    async def after_payment(self, booked: Booked, now: datetime) -> None:
        """What becomes of a paid booking: the first few tell one story each (so that
        even a short history has them all), the others what the odds say."""
        if booked.level == "vvip":
            await self.assign_concierge(booked)
        self.paid += 1
        story = STORIES[self.paid - 1] if self.paid <= len(STORIES) else None
        roll = self.random.random()
        if story == "dispute":
            self.plan(now + timedelta(days=10), lambda: self.dispute(booked, "fraudulent"))
        elif story == "cancel":
            self.later(booked.start - timedelta(hours=30), now,
                       lambda: self.cancel(booked, "customer"))
        elif story == "damages":
            self.plan(booked.end + timedelta(hours=6), lambda: self.damages(booked))
        elif story == "goodwill":
            self.plan(booked.end + timedelta(days=1), lambda: self.goodwill(booked))
        elif roll < 0.10:
            self.later(booked.start - timedelta(days=self.random.uniform(0.5, 20)), now,
                       lambda: self.cancel(booked, "customer"))
        elif roll < 0.12:
            self.later(booked.start - timedelta(days=self.random.uniform(2, 10)), now,
                       lambda: self.cancel(booked, "business"))
        elif roll < 0.13:
            self.later(booked.start - timedelta(days=1), now, lambda: self.force_majeure(booked))
        elif roll < 0.20:
            self.plan(booked.end + timedelta(hours=6), lambda: self.damages(booked))
        elif roll < 0.26:
            self.plan(booked.end + timedelta(days=1), lambda: self.goodwill(booked))
        elif roll < 0.29:
            self.plan(booked.end + timedelta(days=12), lambda: self.dispute(booked))
        # else: an uneventful rental, like most

    def later(self, at: datetime, now: datetime, run: Callable[[], Awaitable[None]]) -> None:
        if at > now + timedelta(hours=1):
            self.plan(at, run)

    async def assign_concierge(self, booked: Booked) -> None:
        concierge = self.random.choice(("sofia.laurent", "karim.haddad"))
        await self.client.call("PUT", f"/api/v1/bookings/{booked.id}/concierge",
                               self.tokens["marcus.hale"],
                               json={"concierge_id": self.accounts[concierge]})
        if self.random.random() < 0.5:
            await self.client.call(
                "POST", f"/api/v1/customers/{self.accounts[booked.customer.key]}/notes",
                self.tokens[concierge], json={"text": self.random.choice(NOTES)})

    async def cancel(self, booked: Booked, reason: str) -> None:
        token = self.tokens[booked.customer.key if reason == "customer" else "marcus.hale"]
        status, _ = await self.client.call("POST", f"/api/v1/bookings/{booked.id}/cancel",
                                           token, json={"reason": reason}, ok=(200, 409))
        if status == 200:
            self.tally.add(f"cancelled ({reason})")

    async def force_majeure(self, booked: Booked) -> None:
        status, _ = await self.client.call(
            "POST", f"/api/v1/bookings/{booked.id}/force-majeure", self.tokens["marcus.hale"],
            ok=(200, 409))
        if status == 200:
            self.tally.add("cancelled (force majeure)")

    async def damages(self, booked: Booked) -> None:
        """The concierge found damage at check-in: part of the deposit is captured."""
        amount = self.random.choice((350_00, 800_00, 1_500_00, 2_400_00))
        status, _ = await self.client.call(
            "POST", f"/api/v1/bookings/{booked.id}/deposit/capture", self.tokens["sofia.laurent"],
            json={"amount": amount, "reason": self.random.choice(DAMAGES[booked.item.category])},
            ok=(200, 409, 422))
        if status == 200:
            self.tally.add("deposit captured for damages")

    async def goodwill(self, booked: Booked) -> None:
        amount = max(1, booked.total // 10)
        status, _ = await self.client.call(
            "POST", f"/api/v1/bookings/{booked.id}/refunds", self.tokens["marcus.hale"],
            json={"amount": amount, "reason": "goodwill: a late delivery"}, ok=(202, 409, 422))
        if status == 202:
            self.tally.add("refunded in part (goodwill)")

    async def dispute(self, booked: Booked, reason: str | None = None) -> None:
        """The card holder disputes the charge, then the bank decides: as Stripe reports
        it, a signed event to the webhook route (the local Stripe has no disputes)."""
        async with self.app[DATABASE].acquire() as conn:
            intent = await conn.fetchval(
                "SELECT data->>'reference' FROM events WHERE type = $2"
                " AND data->>'booking_id' = $1", booked.id, PAYMENT_SUCCEEDED)
        if intent is None:
            return
        dispute = f"dp_demo{hashlib.sha256(booked.id.encode()).hexdigest()[:16]}"
        obj = {"id": dispute, "object": "dispute", "amount": booked.total,
               "currency": booked.currency.lower(), "payment_intent": intent,
               "reason": reason or self.random.choice(("product_not_received", "general")),
               "status": "needs_response"}
        await self.stripe_event("charge.dispute.created", obj)
        self.tally.add("disputed")
        won = self.random.random() < 0.6
        closed = {**obj, "status": "won" if won else "lost"}
        self.plan(self.clock() + timedelta(days=21),
                  lambda: self.stripe_event("charge.dispute.closed", closed))

    async def stripe_event(self, kind: str, obj: dict[str, Any]) -> None:
        secret = self.app[SETTINGS].stripe_webhook_secret
        if secret is None:
            raise DemoError("no Stripe webhook secret to sign the demo's dispute events")
        payload = json.dumps({
            "id": f"evt_demo_{kind.replace('.', '_')}_{obj['id']}", "object": "event",
            "type": kind, "created": int(time.time()), "livemode": False,
            "data": {"object": obj}})
        stamp = int(time.time())
        mac = hmac.new(secret.get_secret_value().encode(), f"{stamp}.{payload}".encode(),
                       hashlib.sha256).hexdigest()
        await self.client.post_raw("/api/v1/webhooks/stripe", payload.encode(), {
            "Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"})


def todays_round(end: datetime) -> datetime:
    """When today's bookings are made: three hours before ``end``, but not before today
    has begun in every location (the dashboard's "today" is each location's own), and at
    the latest two minutes before ``end``."""
    begun = max(end.astimezone(place.zone).replace(hour=0, minute=1, second=0, microsecond=0)
                for place in DEFAULT_CATALOGUE.locations.values())
    return min(max(end - timedelta(hours=3), begun), end - timedelta(minutes=2))


HOLD_STORIES = {2: "declined", 3: "unpaid"}  # the second and third holds of the history
STORIES = ("dispute", "cancel", "damages", "goodwill")  # of the first paid bookings
NOTES = (
    "Prefers a chilled bottle of Krug on arrival.",
    "Travels with a small dog; book pet-friendly transfers.",
    "Allergic to shellfish: tell the chef and the catering crew.",
    "Likes the car delivered to the hotel's side entrance.",
    "Celebrating an anniversary this month: flowers in the cabin.",
)
DAMAGES = {
    "car": ("scratched alloy wheel", "cracked side mirror", "interior cleaning after a spill"),
    "yacht": ("chipped teak on the swim platform", "lost tender paddle", "stained upholstery"),
    "jet": ("cabin upholstery stain", "damaged galley trolley"),
    "property": ("broken pool light", "wine stain on a rug", "damaged lounge chair"),
}
