"""Business series in /metrics: read from the database, so any process answers the same
figures; and the Grafana dashboard kept in docs/ references only series /metrics has."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from prometheus_client.parser import text_string_to_metric_families

from midas.config import ROOT
from midas.http.keys import DATABASE
from tests.support.fake_stripe import (
    deliver,
    event,
    hold,
    make_item,
    pay_and_confirm,
    sign,
    wait_until,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DASHBOARD = ROOT / "docs" / "grafana" / "midas.json"
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


async def _scrape(client: Any, auth: Any) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = await client.get("/metrics", headers=auth("admin"))
    assert response.status == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value)
    return samples


def _value(samples: dict[str, Any], name: str, **labels: str) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))


async def test_another_process_reports_the_business_series_of_the_whole_service(
    payment_services: Any, auth: Any,
) -> None:
    first = await payment_services(business_metrics_cache_s=0)
    other = await payment_services(business_metrics_cache_s=0, projections_enabled=False)
    car = await make_item(first, auth)
    customer = auth("customer", uuid4())
    paid = await hold(first, customer, car, NOW + timedelta(days=10), NOW + timedelta(days=12))
    await pay_and_confirm(first, customer, paid)
    dropped = await hold(first, customer, car, NOW + timedelta(days=20),
                         NOW + timedelta(days=21))
    cancel = await first.post(f"/api/v1/bookings/{dropped['id']}/cancel", headers=customer,
                              json={})
    assert cancel.status == 200, await cancel.text()
    forged = event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})
    assert (await deliver(first, forged, sign(forged, secret="whsec_other"))).status == 400
    total = paid["quote"]["total_due"]

    async def settled() -> bool:
        samples = await _scrape(other, auth)
        return _value(samples, "midas_bookings_cancelled_total", currency="USD") == 1

    await wait_until(settled, timeout=30)
    samples = await _scrape(other, auth)  # the process that did none of it
    assert _value(samples, "midas_bookings_held_total", currency="USD") == 2
    assert _value(samples, "midas_bookings_confirmed_total", currency="USD") == 1
    assert _value(samples, "midas_revenue_gross_minor_total", currency="USD") == total
    assert _value(samples, "midas_revenue_refunded_minor_total", currency="USD") == 0
    assert _value(samples, "midas_bookings", status="confirmed") == 1
    assert _value(samples, "midas_webhook_outcomes_total", provider="stripe",
                  outcome="applied") == 1
    assert _value(samples, "midas_webhook_outcomes_total", provider="stripe",
                  outcome="invalid_signature") == 1
    assert _value(samples, "midas_security_events_total", kind="webhook_signature_failed") == 1
    assert _value(samples, "midas_security_events_total", kind="lockout") == 0
    assert _value(samples, "midas_business_metrics_up") == 1
    for name in ("notifications", "bookings", "payments_process"):
        assert _value(samples, "midas_projection_lag_events", projection=name) is not None
    assert _value(samples, "midas_event_log_head")


async def test_outbox_depth_its_oldest_row_and_dead_letters(service: Any, auth: Any) -> None:
    app_client = await service(business_metrics_cache_s=0)
    samples = await _scrape(app_client, auth)
    assert _value(samples, "midas_outbox_depth") == 0
    assert _value(samples, "midas_outbox_oldest_pending_age_seconds") == 0
    assert _value(samples, "midas_dead_letters", queue="email") == 0
    async with app_client.server.app[DATABASE].acquire() as conn:
        for n, status in enumerate(("pending", "pending", "dead", "sent")):
            await conn.execute(
                "INSERT INTO notif_outbox (dedupe_key, template, recipient, context, status,"
                " next_attempt_at, tracking_id, created_at) VALUES ($1, 'welcome', '@ops',"
                " '{}', $2, now(), $3, now() - make_interval(secs => $4))",
                f"k{n}", status, uuid4(), 600.0 - n)
    samples = await _scrape(app_client, auth)
    assert _value(samples, "midas_outbox_depth") == 2
    assert 599 <= (_value(samples, "midas_outbox_oldest_pending_age_seconds") or 0) < 700
    assert _value(samples, "midas_dead_letters", queue="email") == 1
    assert _value(samples, "midas_outbox_emails", status="sent") == 1


def _referenced(dashboard: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has queries"
    return {name for expr in exprs for name in re.findall(r"\bmidas_[a-z0-9_]+", expr)}


async def test_the_grafana_dashboard_references_only_series_in_metrics(
    payment_services: Any, auth: Any,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    client = await payment_services(business_metrics_cache_s=0)
    car = await make_item(client, auth)  # an HTTP request: the latency histogram has data
    customer = auth("customer", uuid4())
    booking = await hold(client, customer, car, NOW + timedelta(days=3),
                         NOW + timedelta(days=4))
    await pay_and_confirm(client, customer, booking)

    async def kpis() -> bool:
        return _value(await _scrape(client, auth), "midas_bookings_held_total",
                      currency="USD") == 1

    await wait_until(kpis, timeout=30)
    exposed = set(await _scrape(client, auth))
    declared = await _families(client, auth)  # with or without samples (per replica: none)
    missing = sorted(n for n in _referenced(dashboard)
                     if n not in exposed and _family(n) not in declared)
    assert not missing, f"the dashboard queries series /metrics does not have: {missing}"
    # every series has samples here but the per-replica lag (no replica in this test;
    # tests/e2e/test_read_replicas.py reads it)
    assert _referenced(dashboard) - exposed == {"midas_read_replica_lag_events"}
    # every business family is on the dashboard
    business = {n for n in exposed if n.startswith("midas_") and not n.startswith(
        "midas_http_")}
    families = {_family(n) for n in business}
    shown = {_family(n) for n in _referenced(dashboard)}
    assert families <= shown, sorted(families - shown)


def _family(name: str) -> str:
    return re.sub("(" + "|".join(_SUFFIXES) + ")$", "", name)


async def _families(client: Any, auth: Any) -> set[str]:
    response = await client.get("/metrics", headers=auth("admin"))
    return {family.name for family in text_string_to_metric_families(await response.text())}


async def test_scrapes_within_the_cache_age_read_the_database_once(
    service: Any, auth: Any,
) -> None:
    client = await service(business_metrics_cache_s=3600)
    before = await _scrape(client, auth)
    async with client.server.app[DATABASE].acquire() as conn:
        await conn.execute(
            "INSERT INTO ops_webhook_outcomes (provider, outcome, count) VALUES ('x', 'y', 5)")
    cached = await _scrape(client, auth)
    assert _value(before, "midas_outbox_depth") == _value(cached, "midas_outbox_depth") == 0
    assert _value(cached, "midas_webhook_outcomes_total", provider="x", outcome="y") is None
    fresh = await _scrape(await service(business_metrics_cache_s=0), auth)
    assert _value(fresh, "midas_webhook_outcomes_total", provider="x", outcome="y") == 5
