"""The console's pages: a shell per page (no data, served to anyone) and its fragment,
rendered on the server from the public API's answers for the signed-in caller.

The browser holds the tokens; its script asks for a page's fragment with the bearer token
and puts the HTML in place (and asks again every few seconds where figures are live).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import jinja2
from aiohttp import web

from midas.console import charts
from midas.console.client import Answer, Api, Refused
from midas.http.keys import CLOCK
from midas.http.problems import Problem

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CONSOLE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
                  " img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
ZOOMS = {"day": 1, "week": 7, "month": 31}
REVENUE_DAYS, WINDOW_DAYS = 90, 30
TIMELINE_WIDTH = 1000

env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=True, trim_blocks=True, lstrip_blocks=True,
                         undefined=jinja2.StrictUndefined)


def money(minor: int | None, currency: str | None = "") -> str:
    if minor is None:
        return "–"
    value = Decimal(minor) / 100
    return f"{value:,.2f} {currency or ''}".strip()


def when(value: str | None) -> str:
    if not value:
        return "–"
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc_input(value: str | None) -> str:
    """An instant as a datetime-local field's value, in UTC (the console shows UTC)."""
    if not value:
        return ""
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def percent(ratio: str | None) -> str:
    return "–" if ratio is None else f"{Decimal(ratio) * 100:.1f} %"


env.filters.update(money=money, when=when, percent=percent, utc_input=utc_input)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Content-Security-Policy": CONSOLE_POLICY})


def render(template: str, **context: Any) -> web.Response:
    return _html(env.get_template(template).render(**context))


# -- shells ----------------------------------------------------------------------------

PAGES = {  # shell path -> (title, navigation entry it belongs to)
    "/console/today": ("Today", "today"),
    "/console/timeline": ("Fleet timeline", "timeline"),
    "/console/bookings/{id}": ("Booking", "timeline"),
    "/console/customers": ("Customers", "customers"),
    "/console/customers/{id}": ("Customer", "customers"),
    "/console/items": ("Items", "items"),
    "/console/items/{id}": ("Item", "items"),
    "/console/alerts": ("Alerts and emails", "alerts"),
}


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/today")


async def sign_in(request: web.Request) -> web.Response:
    return render("sign_in.html", title="Sign in")


def shell(path: str) -> Any:
    title, section = PAGES[path]

    async def handler(request: web.Request) -> web.Response:
        fragment = "/console/fragments" + request.path.removeprefix("/console")
        return render("shell.html", title=title, section=section, fragment=fragment)

    handler.__name__ = "console_" + path.strip("/").replace("/", "_").replace("{id}", "one")
    return handler


# -- fragments -------------------------------------------------------------------------


def fragment(handler: Any) -> Any:
    """Answer 401 (the script refreshes its token) when the API refused the caller's token."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except Refused as refused:
            raise Problem(401, refused.answer.problem,
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
        except (aiohttp.ClientError, TimeoutError):
            raise Problem(503, "The console could not reach the API; retry.",
                          headers={"Retry-After": "1"}) from None

    wrapped.__name__ = handler.__name__
    return wrapped


def _need(answer: Answer) -> Any:
    if answer.status == 404:
        raise web.HTTPNotFound()
    if not answer.ok:
        raise Problem(answer.status, answer.problem)
    return answer.body


def _today(request: web.Request) -> date:
    return request.app[CLOCK]().astimezone(UTC).date()


@fragment
async def today_fragment(request: web.Request) -> web.Response:
    workload, dashboard, errors, trends, receivables = await Api(request).many(
        ("/api/v1/admin/workload", None),
        ("/api/v1/admin/dashboard", None),
        ("/api/v1/admin/errors", {"limit": 1}),
        ("/api/v1/admin/trends", {"days": REVENUE_DAYS, "window": WINDOW_DAYS}),
        ("/api/v1/reports/receivables", None),
    )
    work, dash, errs, trend = _need(workload), _need(dashboard), _need(errors), _need(trends)
    return render("today.html", work=work, dash=dash, alerts=errs["alerts"],
                  instalments_due=_need(receivables)["currencies"],
                  revenue=_revenue_charts(trend), utilisation=_utilisation_chart(trend),
                  funnel=_funnel_chart(trend), day=_today(request))


def _revenue_charts(trend: dict[str, Any]) -> list[dict[str, Any]]:
    by_currency: dict[str, dict[str, int]] = defaultdict(dict)
    for row in trend["revenue_by_day"]:
        by_currency[row["currency"]][row["day"]] = row["net"]
    span = charts.days(date.fromisoformat(trend["days_from"]), date.fromisoformat(trend["to"]))
    out = []
    for currency, per_day in sorted(by_currency.items()):
        points = [charts.Point(d.isoformat(), per_day.get(d.isoformat(), 0) / 100) for d in span]
        out.append({"currency": currency, "total": sum(per_day.values()),
                    "chart": charts.column_chart(
                        points, f"Net revenue per day, {currency}, last {len(span)} days"),
                    "rows": [(p.label, p.value) for p in points if p.value]})
    return out


def _utilisation_chart(trend: dict[str, Any]) -> dict[str, Any]:
    points = [charts.Point(r["category"], float(r["utilisation"] or 0))
              for r in trend["utilisation_by_category"]]
    return {"chart": charts.bar_chart(
                points, f"Utilisation by category, last {WINDOW_DAYS} days", share=True),
            "rows": [(p.label, f"{p.value * 100:.1f} %") for p in points]}


FUNNEL = ("held", "confirmed", "completed", "cancelled", "expired")


def _funnel_chart(trend: dict[str, Any]) -> dict[str, Any]:
    steps = {step: sum(r[step] for r in trend["funnel"]) for step in FUNNEL}
    points = [charts.Point(step, steps[step]) for step in FUNNEL]
    return {"chart": charts.bar_chart(points, f"Booking funnel, last {WINDOW_DAYS} days"),
            "rows": [(p.label, int(p.value)) for p in points]}


def _start_of(value: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(value) if value else fallback
    except ValueError:
        raise Problem(422, "`start` must be a date (YYYY-MM-DD).", errors=[
            {"field": "query.start", "message": "not a date", "type": "value_error"}]) from None


@fragment
async def timeline_fragment(request: web.Request) -> web.Response:
    zoom = request.query.get("zoom", "week")
    if zoom not in ZOOMS:
        raise Problem(422, "`zoom` is day, week or month.", errors=[
            {"field": "query.zoom", "message": "day, week or month", "type": "enum"}])
    first = _start_of(request.query.get("start"), _today(request))
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = start + timedelta(days=ZOOMS[zoom])
    params = {"from": start.isoformat(), "to": end.isoformat(), "limit": 200,
              "category": request.query.get("category") or None,
              "location": request.query.get("location") or None,
              "offset": request.query.get("offset") or None}
    view = _need(await Api(request).get("/api/v1/fleet/timeline", params))
    span = charts.Span(start, end, TIMELINE_WIDTH)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in view["items"]:
        bars = []
        for bar in item["bars"]:
            s = datetime.fromisoformat(bar["start"])
            e = datetime.fromisoformat(bar["end"])
            x0, x1 = span.x(s), span.x(e)
            bars.append({**bar, "x": x0, "w": max(x1 - x0, 2.0),
                         "label": f"{bar['state']} {when(bar['start'])} – {when(bar['end'])}"})
        groups[(item["category"], item["location"])].append({**item, "bars": bars})
    if zoom == "day":
        ticks = [(span.x(start + timedelta(hours=h)), f"{h:02d}:00") for h in range(0, 24, 3)]
    else:
        ticks = [(span.x(start + timedelta(days=d)), (first + timedelta(days=d)).strftime(
            "%a %d" if zoom == "week" else "%d")) for d in range(ZOOMS[zoom])]
    step = ZOOMS[zoom]
    return render("timeline.html", groups=sorted(groups.items()), ticks=ticks, zoom=zoom,
                  zooms=list(ZOOMS), width=TIMELINE_WIDTH, start=first,
                  previous=first - timedelta(days=step), next=first + timedelta(days=step),
                  category=params["category"] or "", location=params["location"] or "",
                  offset=int(str(params["offset"] or 0)), more=view["more"],
                  count=len(view["items"]))


def _id(request: web.Request) -> str:
    try:
        return str(UUID(request.match_info["id"]))
    except ValueError:
        raise web.HTTPNotFound() from None


@fragment
async def booking_fragment(request: web.Request) -> web.Response:
    booking_id = _id(request)
    base = f"/api/v1/bookings/{booking_id}"
    api = Api(request)
    booking, payments, customer_refund, business_refund, story, concierges = await api.many(
        (base, None), (f"{base}/payments", None),
        (f"{base}/refund-preview", {"reason": "customer"}),
        (f"{base}/refund-preview", {"reason": "business"}),
        (f"/api/v1/audit/bookings/{booking_id}/timeline", None),
        ("/api/v1/accounts", {"role": "concierge", "status": "active", "limit": 200}),
    )
    view = _need(booking)
    return render(
        "booking.html", b=view, quote=view.get("quote") or {},
        payments=payments.body if payments.ok else None,
        refunds={"customer": customer_refund.body if customer_refund.ok else None,
                 "business": business_refund.body if business_refund.ok else None},
        story=story.body["entries"] if story.ok else None,
        story_refused=None if story.ok else story.problem,
        concierges=concierges.body["accounts"] if concierges.ok else [])


@fragment
async def customers_fragment(request: web.Request) -> web.Response:
    q = {k: request.query.get(k) or None for k in ("q", "tier", "segment")}
    answer = await Api(request).get("/api/v1/customers", {**q, "limit": 50})
    return render("customers.html", q=q, answer=answer,
                  customers=answer.body["customers"] if answer.ok else [])


@fragment
async def customer_fragment(request: web.Request) -> web.Response:
    view = _need(await Api(request).get(f"/api/v1/customers/{_id(request)}"))
    return render("customer.html", c=view, p=view["profile"])


@fragment
async def items_fragment(request: web.Request) -> web.Response:
    q = {k: request.query.get(k) or None for k in ("category", "location", "status", "after")}
    answer = await Api(request).get("/api/v1/items", {**q, "limit": 100})
    return render("items.html", q=q, answer=answer,
                  items=answer.body["items"] if answer.ok else [],
                  next_after=answer.body.get("next_after") if answer.ok else None)


@fragment
async def item_fragment(request: web.Request) -> web.Response:
    item_id = _id(request)
    now = request.app[CLOCK]()
    item, calendar = await Api(request).many(
        (f"/api/v1/items/{item_id}", None),
        (f"/api/v1/items/{item_id}/calendar",
         {"from": (now - timedelta(days=30)).isoformat(),
          "to": (now + timedelta(days=365)).isoformat()}))
    busy = _need(calendar)["busy"]
    return render("item.html", item=_need(item),
                  windows=[b for b in busy if b.get("kind") == "maintenance"],
                  blocks=[b for b in busy if b.get("kind") == "external_block"])


@fragment
async def alerts_fragment(request: web.Request) -> web.Response:
    errors, outbox = await Api(request).many(
        ("/api/v1/admin/errors", {"limit": 50}),
        ("/api/v1/admin/notifications/outbox", {"status": "dead", "limit": 100}))
    return render("alerts.html", errors=_need(errors), outbox=_need(outbox))


FRAGMENTS = {
    "/console/fragments/today": today_fragment,
    "/console/fragments/timeline": timeline_fragment,
    "/console/fragments/bookings/{id}": booking_fragment,
    "/console/fragments/customers": customers_fragment,
    "/console/fragments/customers/{id}": customer_fragment,
    "/console/fragments/items": items_fragment,
    "/console/fragments/items/{id}": item_fragment,
    "/console/fragments/alerts": alerts_fragment,
}
