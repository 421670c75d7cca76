"""Business series for /metrics, read from the read models and the database at scrape time.

Every process answers the same figures (they are not counted in any one process), so they
stay right behind a load balancer, across restarts and with any number of processes; read
at most every ``MIDAS_BUSINESS_METRICS_CACHE_S`` (10 s), so frequent scrapes cost one round
of small queries. Counters (``_total``) only grow while the read models are not rebuilt:
they are sums of the KPI projection's daily counters (holds, confirmations, cancellations,
revenue per currency, in minor units), of the webhook outcome counts and of the
append-only security record. Gauges: bookings in each status, the email outbox's depth
and the age of its oldest pending row, dead letters, each projection's lag behind the log.
When the database cannot be read, the last figures are kept and
``midas_business_metrics_up`` is 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from midas.eventstore import Database
from midas.eventstore.replicas import Replicas
from midas.notifications.outbox import OUTBOX_TABLE
from midas.security.events import TABLE as SECURITY_EVENTS
from midas.security.events import Kind
from projections.kpis import LIVE_TABLE, TOTALS_TABLE

log = logging.getLogger(__name__)

BOOKING_COUNTERS = (("held", "midas_bookings_held", "Booking holds placed"),
                    ("confirmed", "midas_bookings_confirmed", "Bookings confirmed"),
                    ("cancelled", "midas_bookings_cancelled", "Bookings cancelled"),
                    ("expired", "midas_bookings_expired", "Holds expired unpaid"))
REVENUE_COUNTERS = (("gross", "midas_revenue_gross_minor",
                     "Payments succeeded, in minor units of the currency"),
                    ("refunds", "midas_revenue_refunded_minor",
                     "Refunds, in minor units of the currency"))


@dataclass
class Snapshot:
    totals: list[dict[str, Any]] = field(default_factory=list)  # per currency
    live: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)  # rows per status
    oldest_pending_s: float = 0.0
    alerts_failed: int = 0
    head: int = 0
    checkpoints: dict[str, int] = field(default_factory=dict)
    webhooks: list[tuple[str, str, int]] = field(default_factory=list)
    security: dict[str, int] = field(default_factory=dict)


async def read_snapshot(conn: Any, now: datetime) -> Snapshot:
    totals = await conn.fetch(
        f"SELECT currency, sum(held) AS held, sum(confirmed) AS confirmed,"
        f" sum(cancelled) AS cancelled, sum(expired) AS expired, sum(gross) AS gross,"
        f" sum(refunds) AS refunds FROM {TOTALS_TABLE} GROUP BY currency ORDER BY currency")
    outbox = await conn.fetch(f"SELECT status, count(*) AS n FROM {OUTBOX_TABLE}"
                              " GROUP BY status")
    oldest = await conn.fetchval(f"SELECT min(created_at) FROM {OUTBOX_TABLE}"
                                 " WHERE status = 'pending'")
    checkpoints = await conn.fetch("SELECT name, position FROM projection_checkpoints")
    return Snapshot(
        totals=[dict(r) for r in totals],
        live={r["status"]: r["bookings"] for r in await conn.fetch(
            f"SELECT status, bookings FROM {LIVE_TABLE}")},
        outbox={r["status"]: r["n"] for r in outbox},
        oldest_pending_s=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        alerts_failed=await conn.fetchval(
            "SELECT count(*) FROM err_alerts WHERE webhook_status = 'failed'"),
        head=await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"),
        checkpoints={r["name"]: r["position"] for r in checkpoints},
        webhooks=[(r["provider"], r["outcome"], r["count"]) for r in await conn.fetch(
            "SELECT provider, outcome, count FROM ops_webhook_outcomes")],
        security={r["kind"]: r["n"] for r in await conn.fetch(
            f"SELECT kind, count(*) AS n FROM {SECURITY_EVENTS} GROUP BY kind")},
    )


class BusinessMetrics(Collector):
    """A Prometheus collector over the last snapshot; ``refresh`` reads a new one when the
    last is older than ``max_age_s`` (the /metrics handler awaits it before exposing)."""

    def __init__(self, db: Database, clock: Any, max_age_s: float) -> None:
        self._db, self._clock, self._max_age_s = db, clock, max_age_s
        self._snapshot: Snapshot | None = None
        self._read_at = float("-inf")
        self._up = False
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self._max_age_s:
                return
            try:
                async with self._db.acquire() as conn:
                    self._snapshot = await read_snapshot(conn, self._clock())
                self._up = True
            except Exception:
                log.warning("business metrics not read", exc_info=True)
                self._up = False
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("midas_business_metrics_up",
                               "Whether the last read of the business series succeeded")
        up.add_metric([], 1.0 if self._up else 0.0)
        yield up
        if self._snapshot is not None:
            yield from _families(self._snapshot)

    def describe(self) -> Iterator[Any]:
        return iter(())  # read at scrape time: nothing to check at registration


def _families(s: Snapshot) -> Iterator[Any]:
    for column, name, documentation in (*BOOKING_COUNTERS, *REVENUE_COUNTERS):
        family = CounterMetricFamily(name, documentation, labels=["currency"])
        for row in s.totals:
            family.add_metric([row["currency"]], float(row[column] or 0))
        yield family
    live = GaugeMetricFamily("midas_bookings", "Bookings now in each status",
                             labels=["status"])
    for status, count in sorted(s.live.items()):
        live.add_metric([status], float(count))
    yield live
    emails = GaugeMetricFamily("midas_outbox_emails", "Email outbox rows in each status",
                               labels=["status"])
    for status, count in sorted(s.outbox.items()):
        emails.add_metric([status], float(count))
    yield emails
    depth = GaugeMetricFamily("midas_outbox_depth", "Emails waiting to be sent")
    depth.add_metric([], float(s.outbox.get("pending", 0)))
    yield depth
    age = GaugeMetricFamily("midas_outbox_oldest_pending_age_seconds",
                            "Age of the oldest email waiting to be sent (0: none)")
    age.add_metric([], s.oldest_pending_s)
    yield age
    dead = GaugeMetricFamily("midas_dead_letters", "Work given up after its retries",
                             labels=["queue"])
    dead.add_metric(["email"], float(s.outbox.get("dead", 0)))
    dead.add_metric(["alert_webhook"], float(s.alerts_failed))
    yield dead
    head = GaugeMetricFamily("midas_event_log_head", "The last position of the event log")
    head.add_metric([], float(s.head))
    yield head
    lag = GaugeMetricFamily("midas_projection_lag_events",
                            "Events of the log a projection has not applied yet",
                            labels=["projection"])
    for name, position in sorted(s.checkpoints.items()):
        lag.add_metric([name], float(max(s.head - position, 0)))
    yield lag
    webhooks = CounterMetricFamily("midas_webhook_outcomes",
                                   "Provider notifications by what became of them",
                                   labels=["provider", "outcome"])
    for provider, outcome, count in sorted(s.webhooks):
        webhooks.add_metric([provider, outcome], float(count))
    yield webhooks
    security = CounterMetricFamily("midas_security_events",
                                   "Security events recorded, by kind", labels=["kind"])
    for kind in sorted({*(k.value for k in Kind), *s.security}):
        security.add_metric([kind], float(s.security.get(kind, 0)))
    yield security


class ReplicaMetrics(Collector):
    """This process's view of its read replicas: how many serve, how far each is behind."""

    def __init__(self, replicas: Replicas | None) -> None:
        self._replicas = replicas

    async def refresh(self) -> None:
        """Nothing to read: the replicas' watcher keeps their state."""

    def collect(self) -> Iterator[Any]:
        replicas = self._replicas.replicas if self._replicas is not None else []
        states = GaugeMetricFamily("midas_read_replicas",
                                   "Read replicas of this process, in service or left out",
                                   labels=["state"])
        serving = sum(1 for r in replicas if r.healthy)
        states.add_metric(["in_service"], float(serving))
        states.add_metric(["left_out"], float(len(replicas) - serving))
        yield states
        lag = GaugeMetricFamily("midas_read_replica_lag_events",
                                "Events a read replica's log was behind the primary's at its"
                                " last check", labels=["replica"])
        for replica in replicas:
            if replica.lag is not None:
                lag.add_metric([replica.name], float(replica.lag))
        yield lag

    def describe(self) -> Iterator[Any]:
        return iter(())
