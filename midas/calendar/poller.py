"""The subscription poller: fetch external calendars and sync their busy blocks.

Any number of processes run one; each claims due subscriptions with
`FOR UPDATE SKIP LOCKED` and keeps the row locked while it fetches and syncs, so no two
processes work one subscription at once. Fetches are bounded (timeout, size limit) and
conditional (ETag / Last-Modified), and reach public addresses only, redirects included
(``midas.security.outbound``). A failure of any kind is recorded in
`cal_integration_errors` and on the subscription, logged as an integration alert, and
leaves the blocks exactly as they were. A connection refused, a timeout and a connection
closed without an answer read alike, so errors never tell whether a port is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import aiohttp

from midas import tracing
from midas.background import Background
from midas.calendar.importer import FeedError, SyncResult, item_zone, parse_busy, sync_blocks
from midas.domain.inventory import Item
from midas.eventstore import AggregateNotFound, Database, Repository, is_unavailable
from midas.security.outbound import OutboundGuard, OutboundRefused, TooManyRedirects

log = logging.getLogger(__name__)
MAX_REDIRECTS = 3
UNREACHABLE = "no answer from the calendar's server (refused, timed out or closed)"


@dataclass(frozen=True)
class PollerConfig:
    horizon: timedelta = timedelta(days=180)
    timeout_s: float = 10.0
    max_bytes: int = 2 * 1024 * 1024
    max_occurrences: int = 5000
    poll_interval_s: float = 30.0  # how often the loop looks for due subscriptions
    retry_after_error_s: float = 300.0


@dataclass(frozen=True)
class Fetched:
    status: int  # 200 or 304
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class CalendarPoller(Background):
    task_name = "midas-calendar-poller"

    def __init__(
        self, db: Database, repo: Repository, clock: Callable[[], datetime],
        config: PollerConfig | None = None, guard: OutboundGuard | None = None,
    ) -> None:
        self.db = db
        self.repo = repo
        self.clock = clock
        self.config = config or PollerConfig()
        self.guard = guard or OutboundGuard()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- the loop ---------------------------------------------------------------------

    async def _stopped(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            try:
                while await self.poll_due() > 0:
                    pass
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("calendar poll pass failed")
            await asyncio.sleep(self.config.poll_interval_s)

    async def poll_due(self, limit: int = 5) -> int:
        """Claim and poll up to `limit` due subscriptions; how many were polled."""
        now = self.clock()
        polled = 0
        async with self.db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM cal_subscriptions WHERE url IS NOT NULL AND next_poll_at <= $1"
                " ORDER BY next_poll_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit)
            for row in rows:
                await self._poll(conn, row, now)
                polled += 1
        return polled

    async def poll_one(self, subscription_id: UUID, *, force: bool = True) -> dict[str, Any]:
        """Poll one subscription now (an admin's "sync now"); waits for another poller."""
        now = self.clock()
        async with self.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM cal_subscriptions WHERE id = $1 FOR UPDATE", subscription_id)
            if row is None:
                raise LookupError(subscription_id)
            return await self._poll(conn, row, now, conditional=not force)

    # -- one subscription -------------------------------------------------------------

    async def _poll(
        self, conn: Any, row: Any, now: datetime, *, conditional: bool = True,
    ) -> dict[str, Any]:
        interval = timedelta(seconds=row["poll_interval_s"])
        try:
            fetched = await self.fetch(
                row["url"], row["etag"] if conditional else None,
                row["last_modified"] if conditional else None)
            if fetched.status == 304:
                await conn.execute(
                    "UPDATE cal_subscriptions SET last_polled_at = $2, next_poll_at = $3,"
                    " last_error = NULL WHERE id = $1", row["id"], now, now + interval)
                return {"status": "not_modified"}
            result = await self.apply(row["id"], row["item_id"], fetched.body, now)
        except FeedError as exc:
            await self.record_error(conn, row, exc, now)
            retry = timedelta(seconds=self.config.retry_after_error_s)
            await conn.execute(
                "UPDATE cal_subscriptions SET last_polled_at = $2, next_poll_at = $3,"
                " last_error = $4 WHERE id = $1", row["id"], now, now + min(retry, interval),
                f"{exc.kind}: {exc}")
            return {"status": "error", "error": exc.kind, "detail": str(exc)}
        await conn.execute(
            "UPDATE cal_subscriptions SET last_polled_at = $2, last_synced_at = $2,"
            " next_poll_at = $3, etag = $4, last_modified = $5, last_error = NULL WHERE id = $1",
            row["id"], now, now + interval, fetched.etag, fetched.last_modified)
        return {"status": "synced", **result.__dict__}

    async def apply(
        self, subscription_id: UUID, item_id: UUID, body: bytes, now: datetime,
    ) -> SyncResult:
        """Parse `body` and sync the item's blocks (also used by .ics uploads)."""
        try:
            item = await self.repo.get(item_id, cls=Item)
        except AggregateNotFound:
            raise FeedError("item", f"no item {item_id}") from None
        zone = await item_zone(self.repo, item)
        periods = parse_busy(body, now=now, horizon=self.config.horizon,
                             zone=zone, max_occurrences=self.config.max_occurrences)
        return await sync_blocks(self.repo, self.db, subscription_id=subscription_id,
                                 item_id=item_id, periods=periods, now=now)

    async def record_error(self, conn: Any, row: Any, exc: FeedError, now: datetime) -> None:
        await conn.execute(
            "INSERT INTO cal_integration_errors (subscription_id, item_id, kind, message,"
            " occurred_at) VALUES ($1, $2, $3, $4, $5)",
            row["id"], row["item_id"], exc.kind, str(exc)[:500], now)
        log.warning("calendar feed rejected", extra={
            "alert": "calendar_feed", "category": "integration", "severity": "medium",
            "subscription_id": str(row["id"]), "item_id": str(row["item_id"]),
            "kind": exc.kind})

    async def fetch(
        self, url: str, etag: str | None = None, last_modified: str | None = None,
    ) -> Fetched:
        headers = {"Accept": "text/calendar"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        if self._session is None:
            self._session = self.guard.session()
        with tracing.span("calendar fetch", {"midas.provider": "ics"}, kind="client"):
            return await self._fetch(url, headers, etag, last_modified)

    async def _fetch(self, url: str, headers: dict[str, str], etag: str | None,
                     last_modified: str | None) -> Fetched:
        assert self._session is not None
        try:
            async with asyncio.timeout(self.config.timeout_s), self.guard.get(
                    self._session, url, headers=headers, max_redirects=MAX_REDIRECTS
            ) as response:
                return await self._read(response, etag, last_modified)
        except OutboundRefused as exc:
            raise FeedError("forbidden", f"refused: {exc}") from None
        except TooManyRedirects as exc:
            raise FeedError("http", str(exc)) from None
        except (TimeoutError, aiohttp.ClientError, OSError):
            raise FeedError("unreachable", UNREACHABLE) from None

    async def _read(
        self, response: aiohttp.ClientResponse, etag: str | None, last_modified: str | None,
    ) -> Fetched:
        if response.status == 304:
            return Fetched(304, etag=etag, last_modified=last_modified)
        if response.status != 200:
            raise FeedError("http", f"the calendar answered HTTP {response.status}")
        declared = response.content_length
        if declared is not None and declared > self.config.max_bytes:
            raise FeedError("too_large", f"{declared} bytes (limit {self.config.max_bytes})")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body.extend(chunk)
            if len(body) > self.config.max_bytes:
                raise FeedError("too_large", f"more than {self.config.max_bytes} bytes")
        return Fetched(200, bytes(body), response.headers.get("ETag"),
                       response.headers.get("Last-Modified"))
