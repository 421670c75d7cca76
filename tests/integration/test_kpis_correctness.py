"""Every report figure equals the same figure recomputed from the event log.

A generated history of 5,000+ bookings (expiries, cancellations with refunds, goodwill
refunds, disputes, deposits) is appended straight into the store; the projections catch up;
then reports, dashboard and profiles are compared with a plain recomputation from the log
written here, independently of the projectors' code.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from bench.projections import generate_history
from midas.eventstore import Database, EventStore
from midas.eventstore.store import read_all
from midas.projection import catch_up
from projections.accounts import AccountsProjector
from projections.kpis import KpisProjector
from projections.payment_ledger import PaymentsProjector
from projections.profiles import ProfilesProjector
from queries.customers import load_profiles, profile_of, vip_thresholds
from queries.dashboard import dashboard, live_counts
from queries.reports import Range, customer_report, financial_report, operational_report

NOW = datetime(2025, 9, 15, 12, 0, tzinfo=UTC)


async def _log(db: Database) -> list[Any]:
    events, after = [], 0
    async with db.acquire() as conn:
        while True:
            page = await read_all(conn, after, 10_000)
            if not page:
                return events
            events.extend(page)
            after = page[-1].position


def _day(at: str, zone: str) -> date:
    return datetime.fromisoformat(at).astimezone(ZoneInfo(zone)).date()


class Recomputed:
    """The figures, by the book, from the events alone."""

    def __init__(self, events: list[Any]) -> None:
        self.bookings: dict[UUID, dict[str, Any]] = {}
        self.money: list[tuple[str, UUID, str, int, str]] = []  # kind, booking, ccy, amt, at
        self.states: list[tuple[str, UUID, str]] = []  # kind, booking, at
        self.customers: set[UUID] = set()
        self.deposits: dict[UUID, tuple[str, int, str]] = {}
        self.disputes_open: dict[UUID, bool] = {}
        for e in events:
            d = e.data
            if e.type == "Account.Registered" and d["role"] == "customer":
                self.customers.add(e.stream_id)
            elif e.type == "Booking.Held":
                q = d["quote"]
                self.bookings[e.stream_id] = {
                    "customer": UUID(d["customer_id"]), "item": UUID(d["item_id"]),
                    "category": q["category"], "location": q["location_code"],
                    "zone": q["time_zone"], "currency": q["currency"],
                    "held_at": datetime.fromisoformat(d["held_at"]),
                    "start": datetime.fromisoformat(d["start"]),
                    "end": datetime.fromisoformat(d["end"]), "state": "held",
                    "confirmed_at": None, "cancelled_at": None, "amount_paid": 0}
                self.states.append(("held", e.stream_id, d["held_at"]))
            elif e.type.startswith("Booking."):
                b = self.bookings[e.stream_id]
                state = {"Booking.Confirmed": "confirmed", "Booking.Expired": "expired",
                         "Booking.CheckedOut": "active", "Booking.CheckedIn": "completed",
                         "Booking.Cancelled": "cancelled"}[e.type]
                b["state"] = state
                if state == "confirmed":
                    b["confirmed_at"] = datetime.fromisoformat(d["at"])
                    b["amount_paid"] = d["amount_paid"]
                if state == "cancelled":
                    b["cancelled_at"] = datetime.fromisoformat(d["at"])
                if state != "active":
                    self.states.append((state, e.stream_id, d["at"]))
            elif e.type in ("Payment.Succeeded", "Payment.Refunded", "Payment.DisputeOpened",
                            "Payment.DisputeClosed"):
                kind = {"Payment.Succeeded": "gross", "Payment.Refunded": "refunds",
                        "Payment.DisputeOpened": "dispute",
                        "Payment.DisputeClosed": "closed:" + d.get("outcome", "")}[e.type]
                booking = UUID(d["booking_id"])
                self.money.append((kind, booking, d["currency"], d["amount"], d["at"]))
                if e.type == "Payment.DisputeOpened":
                    self.disputes_open[booking] = True
                if e.type == "Payment.DisputeClosed":
                    self.disputes_open[booking] = False
            elif e.type == "Payment.DepositAuthorised":
                self.deposits[UUID(d["booking_id"])] = ("authorised", d["amount"],
                                                        d["currency"])

    def key(self, booking: UUID, at: str, group: str) -> str:
        b = self.bookings[booking]
        day = _day(at, b["zone"])
        return {"day": day.isoformat(), "month": day.isoformat()[:7],
                "category": b["category"], "location": b["location"],
                "item": str(b["item"]), "total": "total"}[group]

    def in_range(self, booking: UUID, at: str, start: date, end: date) -> bool:
        return start <= _day(at, self.bookings[booking]["zone"]) < end

    def financial(self, start: date, end: date, group: str) -> dict[tuple[str, str], dict]:
        out: dict[tuple[str, str], dict] = defaultdict(lambda: Counter())
        for kind, booking, currency, amount, at in self.money:
            if not self.in_range(booking, at, start, end):
                continue
            row = out[(currency, self.key(booking, at, group))]
            if kind == "gross":
                row["gross"] += amount
            elif kind == "refunds":
                row["refunds"] += amount
            elif kind == "dispute":
                row["disputes"] += 1
                row["disputed_amount"] += amount
            elif kind == "closed:lost":
                row["disputes_lost"] += 1
        return {k: {"gross": v["gross"], "refunds": v["refunds"],
                    "net": v["gross"] - v["refunds"], "disputes": v["disputes"],
                    "disputed_amount": v["disputed_amount"],
                    "disputes_lost": v["disputes_lost"]} for k, v in out.items()}

    def operational(self, start: date, end: date, group: str) -> dict[tuple[str, str], dict]:
        out: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for kind, booking, at in self.states:
            if not self.in_range(booking, at, start, end):
                continue
            b = self.bookings[booking]
            row = out[(b["currency"], self.key(booking, at, group))]
            row[kind] += 1
            if kind == "confirmed":
                row["value"] += b["amount_paid"]
        result = {}
        for k, v in out.items():
            result[k] = {"held": v["held"], "confirmed": v["confirmed"],
                         "cancelled": v["cancelled"], "expired": v["expired"],
                         "completed": v["completed"],
                         "average_booking_value": v["value"] // v["confirmed"]
                         if v["confirmed"] else None}
        return result

    def on_books(self, at: datetime, start: datetime, end: datetime) -> dict[str, int]:
        out: Counter = Counter()
        for b in self.bookings.values():
            if (b["confirmed_at"] is not None and b["confirmed_at"] <= at
                    and (b["cancelled_at"] is None or b["cancelled_at"] > at)
                    and start <= b["start"] < end):
                out[b["currency"]] += b["amount_paid"]
        return dict(out)

    def utilisation(self, start: datetime, end: datetime) -> dict[str, tuple[int, int]]:
        occupied: Counter = Counter()
        for b in self.bookings.values():
            if b["state"] in ("confirmed", "active", "completed"):
                overlap = (min(b["end"], end) - max(b["start"], start)).total_seconds()
                if overlap > 0:
                    occupied[str(b["item"])] += int(overlap)
        return {item: (seconds, int((end - start).total_seconds()))
                for item, seconds in occupied.items()}

    def profiles(self) -> dict[UUID, dict[str, Any]]:
        out: dict[UUID, dict[str, Any]] = {
            c: {"bookings": 0, "confirmed": 0, "completed": 0, "cancelled": 0, "expired": 0,
                "first": None, "last": None, "spend": Counter(), "categories": Counter()}
            for c in self.customers}
        for b in self.bookings.values():
            p = out[b["customer"]]
            p["bookings"] += 1
            if b["confirmed_at"] is not None:
                p["confirmed"] += 1
                p["categories"][b["category"]] += 1
                p["first"] = min(filter(None, (p["first"], b["held_at"])))
                p["last"] = max(filter(None, (p["last"], b["held_at"])))
            if b["state"] in ("completed", "cancelled", "expired"):
                p[b["state"]] += 1
        for kind, booking, currency, amount, _ in self.money:
            customer = self.bookings[booking]["customer"]
            if kind == "gross":
                out[customer]["spend"][currency] += amount
            elif kind == "refunds":
                out[customer]["spend"][currency] -= amount
        return out


def _segments(p: dict[str, Any], thresholds: dict[str, int]) -> list[str]:
    found = []
    if any(s > 0 and s >= thresholds.get(c, math.inf) for c, s in p["spend"].items()):
        found.append("vip")
    if p["completed"] >= 3:
        found.append("loyal")
    if p["confirmed"] >= 2 and NOW - p["last"] >= timedelta(days=365):
        found.append("at_risk")
    if p["first"] is not None and NOW - p["first"] < timedelta(days=90):
        found.append("new")
    if p["confirmed"] == 0:
        found.append("prospect")
    return found


def _thresholds(profiles: dict[UUID, dict[str, Any]]) -> dict[str, int]:
    by_currency: dict[str, list[int]] = defaultdict(list)
    for p in profiles.values():
        for currency, spend in p["spend"].items():
            if spend > 0:
                by_currency[currency].append(spend)
    out = {}
    for currency, spends in by_currency.items():
        spends.sort(reverse=True)
        out[currency] = spends[math.ceil(len(spends) * 5 / 100) - 1]
    return out


def _rows(report: dict[str, Any], fields: tuple[str, ...]) -> dict[tuple[str, str], dict]:
    """Report rows by (currency, key), without rows of nothing but zeros."""
    rows = {(r["currency"], r["key"]): {f: r[f] for f in fields} for r in report["rows"]}
    return _nonzero(rows)


def _nonzero(rows: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    return {k: v for k, v in rows.items() if any(v.values())}


async def test_reports_equal_an_independent_recomputation(
    db: Database, store: EventStore, monkeypatch: Any
) -> None:
    # Small caches of booking facts: the projectors also read them back from their tables.
    monkeypatch.setattr("projections.kpis.DIMS_CACHE", 300)
    monkeypatch.setattr("projections.profiles.DIMS_CACHE", 300)
    history, appends = generate_history(5200, customers=600, items=60)
    for batch in appends:
        await store.append(batch)
    projectors = [AccountsProjector(), PaymentsProjector(), ProfilesProjector(),
                  KpisProjector()]
    for projector in projectors:
        await catch_up(db, projector, batch_size=2000)
    events = await _log(db)
    truth = Recomputed(events)
    assert len(truth.bookings) == 5200
    assert Counter(b["state"] for b in truth.bookings.values())["cancelled"] > 500
    assert sum(1 for m in truth.money if m[0] == "refunds") > 500
    assert sum(1 for m in truth.money if m[0] == "dispute") > 50

    start, end = date(2024, 12, 1), (history.end + timedelta(days=40)).date()
    async with db.acquire() as conn:
        for group in ("day", "month", "category", "location", "item", "total"):
            q = Range.model_validate({"from": start.isoformat(), "to": end.isoformat(),
                                      "group": group})
            fin = await financial_report(conn, q, NOW)
            expected = _nonzero(truth.financial(start, end, group))
            assert _rows(fin, ("gross", "refunds", "net", "disputes", "disputed_amount",
                               "disputes_lost")) == expected, group
            ops = await operational_report(conn, q)
            assert _rows(ops, ("held", "confirmed", "cancelled", "expired", "completed",
                               "average_booking_value")) == truth.operational(
                start, end, group), group

        # A sub-range, its growth against the period before, the forecast and pace.
        q = Range.model_validate({"from": "2025-06-01", "to": "2025-07-01", "group": "total"})
        fin = await financial_report(conn, q, NOW)
        june = truth.financial(date(2025, 6, 1), date(2025, 7, 1), "total")
        may = truth.financial(date(2025, 5, 2), date(2025, 6, 1), "total")
        for total in fin["totals"]:
            key = (total["currency"], "total")
            assert total["net"] == june.get(key, {"net": 0})["net"]
            assert total["previous_net"] == may.get(key, {"net": 0})["net"]
        for f in fin["forecast"]:
            span = timedelta(days=f["days"])
            assert f["on_the_books"] == truth.on_books(NOW, NOW, NOW + span).get(
                f["currency"], 0)
            assert f["previous_period_at_same_point"] == truth.on_books(
                NOW - span, NOW - span, NOW).get(f["currency"], 0)
        assert {f["currency"] for f in fin["forecast"]} >= {"USD"}

        # Utilisation per item over June (no maintenance in this history).
        ops = await operational_report(conn, q)
        expected = truth.utilisation(datetime(2025, 6, 1, tzinfo=UTC),
                                     datetime(2025, 7, 1, tzinfo=UTC))
        got = {u["item_id"]: u for u in ops["utilisation"] if u["utilisation"] != "0.0000"}
        assert set(got) == set(expected)
        for item, (occupied, available) in expected.items():
            assert got[item]["utilisation"] == f"{occupied / available:.4f}" or abs(
                float(got[item]["utilisation"]) - occupied / available) < 0.00005

        # Deposits held and the dashboard's today / month.
        deposits = Counter()
        for currency_amount in truth.deposits.values():
            deposits[currency_amount[2]] += currency_amount[1]
        view = await dashboard(conn, NOW)
        assert {d["currency"]: d["amount"] for d in view["live"]["deposits_held"]} == dict(
            deposits)
        today = truth.financial(NOW.date(), NOW.date() + timedelta(days=1), "total")
        assert {r["currency"]: r["net"] for r in view["today"]} == {
            k[0]: v["net"] for k, v in today.items()}
        month = truth.financial(NOW.date().replace(day=1), NOW.date() + timedelta(days=1),
                                "total")
        assert {r["currency"]: (r["gross"], r["refunds"]) for r in view["this_month"]} == {
            k[0]: (v["gross"], v["refunds"]) for k, v in month.items()}
        live = Counter(b["state"] for b in truth.bookings.values())
        assert view["live"]["active_rentals"] == live["active"]
        assert view["live"]["pending_holds"] == live["held"]
        # The counts the projection keeps, every status, and the items occupied now.
        assert {s: n for s, n in (await live_counts(conn)).items() if n} == dict(live)
        occupied = {b["item"] for b in truth.bookings.values()
                    if b["state"] in ("confirmed", "active") and b["start"] <= NOW < b["end"]}
        assert occupied and view["live"]["items_occupied"] == len(occupied)
        assert view["live"]["open_disputes"] == sum(truth.disputes_open.values())

        # Profiles and segments.
        expected_profiles = truth.profiles()
        thresholds = _thresholds(expected_profiles)
        assert await vip_thresholds(conn) == thresholds
        rows = await load_profiles(conn)
        assert {r["customer_id"] for r in rows} == truth.customers
        segment_counts: Counter = Counter()
        for row in rows:
            want = expected_profiles[row["customer_id"]]
            got_profile = await profile_of(conn, row, NOW, thresholds)
            assert (got_profile.bookings, got_profile.confirmed, got_profile.completed,
                    got_profile.cancelled, got_profile.expired) == (
                want["bookings"], want["confirmed"], want["completed"], want["cancelled"],
                want["expired"])
            assert {s.currency: s.net for s in got_profile.spend if s.paid} == {
                c: v for c, v in want["spend"].items()}
            assert got_profile.first_booking_at == want["first"]
            assert got_profile.last_booking_at == want["last"]
            if want["categories"]:
                top = max(want["categories"].values())
                assert want["categories"][got_profile.favourite_categories[0]] == top
            segments = _segments(want, thresholds)
            assert got_profile.segments == segments, row["customer_id"]
            segment_counts.update(segments)
        report = await customer_report(
            conn, Range.model_validate({"from": "2024-01-01", "to": "2027-01-01"}), NOW)
        assert {r["key"]: r["customers"] for r in report["rows"]
                if r["dimension"] == "segment"} == dict(segment_counts)
        assert segment_counts["prospect"] >= 25 and segment_counts["vip"] > 0
