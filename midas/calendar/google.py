"""Google Calendar push (optional per item): bookings become events in a configured
calendar; events made there come back through incremental sync and become blocks.

Auth: a service account. A JWT (RS256, `iss` = the account's email, `scope` calendar,
`aud` = the token URL) is exchanged at the token URL for an access token, cached until a
minute before it expires. Every pass over an item (claimed `FOR UPDATE SKIP LOCKED`):
1. push: each booking entry of the item whose SEQUENCE is above the one last pushed is
   written with PUT (POST with our id when Google does not know it yet); cancelled and
   expired bookings are deleted there. Event ids are `midas` + the booking id's hex
   (valid base32hex), so a retry never makes a duplicate.
2. pull: `events.list` with the stored sync token gives what changed there; our own
   events are skipped; the others are kept in `cal_google_remote` and the opaque ones made
   the item's external blocks (the same diff as imported calendars). A 410 (sync token
   expired) clears the token and the remote copy and does a full resync, re-pushing every
   booking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

import aiohttp
import jwt

from midas import tracing
from midas.background import stop_task
from midas.calendar.feeds import local_midnight
from midas.calendar.importer import BusyPeriod, FeedError, item_zone, sync_blocks
from midas.domain.inventory import Item
from midas.eventstore import Database, Repository, is_unavailable

log = logging.getLogger(__name__)
SCOPE = "https://www.googleapis.com/auth/calendar"
GOOGLE_NAMESPACE = UUID("3c1f6a52-8e0b-4d7a-b2a9-5f0e6c4d9b13")
EVENT_PREFIX = "midas"


class GoogleError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def google_subscription_id(item_id: UUID) -> UUID:
    """The subscription id under which Google-made events block the item."""
    return uuid5(GOOGLE_NAMESPACE, str(item_id))


def event_id_of(entry: Any) -> str:
    return f"{EVENT_PREFIX}{UUID(str(entry['booking_id'])).hex}"


class GoogleCalendarClient:
    def __init__(
        self, api_base: str, token_url: str, email: str, private_key_pem: str,
        *, timeout_s: float = 20.0,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.token_url = token_url
        self.email = email
        self.key = private_key_pem
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def access_token(self) -> str:
        async with self._lock:
            if self._token is not None and self._token[1] > time.time() + 60:
                return self._token[0]
            now = int(time.time())
            assertion = jwt.encode(
                {"iss": self.email, "scope": SCOPE, "aud": self.token_url, "iat": now,
                 "exp": now + 3600}, self.key, algorithm="RS256")
            async with self._http().post(self.token_url, data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion}) as response:
                if response.status != 200:
                    raise GoogleError(response.status, "the token exchange was refused")
                body = await response.json()
            self._token = (body["access_token"], now + int(body.get("expires_in", 3600)))
            return self._token[0]

    async def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        with tracing.span(f"google calendar {method}", {"midas.provider": "google"},
                          kind="client"):
            headers = {"Authorization": f"Bearer {await self.access_token()}"}
            async with self._http().request(method, f"{self.api_base}{path}", json=json,
                                            params=params, headers=headers) as response:
                body = await response.json() if response.content_type == "application/json" \
                    else None
                if response.status == 401:
                    self._token = None
                return response.status, body

    async def put_event(self, calendar_id: str, event: dict[str, Any]) -> None:
        path = f"/calendars/{calendar_id}/events"
        status, _ = await self.call("PUT", f"{path}/{event['id']}", json=event)
        if status == 404:
            status, _ = await self.call("POST", path, json=event)
            if status == 409:  # created meanwhile
                status, _ = await self.call("PUT", f"{path}/{event['id']}", json=event)
        if status not in (200, 201):
            raise GoogleError(status, f"writing event {event['id']} answered {status}")

    async def delete_event(self, calendar_id: str, event_id: str) -> None:
        status, _ = await self.call("DELETE", f"/calendars/{calendar_id}/events/{event_id}")
        if status not in (200, 204, 404, 410):
            raise GoogleError(status, f"deleting event {event_id} answered {status}")

    async def changes(
        self, calendar_id: str, sync_token: str | None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every event changed since `sync_token` (all of them without one), paged."""
        items: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            params = {"showDeleted": "true", "singleEvents": "true", "maxResults": "250"}
            if sync_token:
                params["syncToken"] = sync_token
            if page:
                params["pageToken"] = page
            status, body = await self.call("GET", f"/calendars/{calendar_id}/events",
                                           params=params)
            if status == 410:
                raise GoogleError(410, "the sync token expired")
            if status != 200:
                raise GoogleError(status, f"listing events answered {status}")
            items.extend(body.get("items", []))
            page = body.get("nextPageToken")
            if not page:
                return items, body["nextSyncToken"]


def event_body(entry: Any) -> dict[str, Any]:
    status = {"held": "tentative"}.get(entry["status"], "confirmed")
    return {
        "id": event_id_of(entry),
        "summary": f"Booking {str(entry['booking_id'])[:8]} ({entry['status']})",
        "start": {"dateTime": entry["starts_at"].astimezone(UTC).isoformat()},
        "end": {"dateTime": entry["ends_at"].astimezone(UTC).isoformat()},
        "status": status,
        "transparency": "opaque",
        "sequence": int(entry["sequence"]),
        "extendedProperties": {"private": {"midas_booking": str(entry["booking_id"])}},
    }


class GooglePusher:
    def __init__(
        self, db: Database, repo: Repository, client: GoogleCalendarClient | None,
        clock: Callable[[], datetime], *, interval_s: float = 60.0,
    ) -> None:
        self.db = db
        self.repo = repo
        self.client = client
        self.clock = clock
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.client is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="midas-google-calendar")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        if self.client is not None:
            await self.client.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync_due()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("google calendar pass failed")
            await asyncio.sleep(self.interval_s)

    async def sync_due(self, limit: int = 20) -> int:
        now = self.clock()
        async with self.db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM cal_google_targets WHERE next_sync_at <= $1 ORDER BY"
                " next_sync_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit)
            for row in rows:
                await self._sync(conn, row, now)
        return len(rows)

    async def sync_item(self, item_id: UUID) -> dict[str, Any]:
        now = self.clock()
        async with self.db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM cal_google_targets WHERE item_id = $1 FOR UPDATE", item_id)
            if row is None:
                raise LookupError(item_id)
            return await self._sync(conn, row, now)

    async def _sync(self, conn: Any, target: Any, now: datetime) -> dict[str, Any]:
        if self.client is None:
            return {"status": "error", "error": "not_configured",
                    "detail": "no Google service account in settings"}
        item_id, calendar_id = target["item_id"], target["calendar_id"]
        outcome: dict[str, Any] = {"status": "synced", "pushed": 0, "deleted": 0,
                                   "full_resync": False}
        try:
            await self._push(conn, item_id, calendar_id, outcome)
            try:
                items, token = await self.client.changes(calendar_id, target["sync_token"])
            except GoogleError as exc:
                if exc.status != 410:
                    raise
                outcome["full_resync"] = True
                await conn.execute("DELETE FROM cal_google_remote WHERE item_id = $1", item_id)
                await conn.execute("DELETE FROM cal_google_events WHERE item_id = $1", item_id)
                await self._push(conn, item_id, calendar_id, outcome)
                items, token = await self.client.changes(calendar_id, None)
            sync = await self._pull(conn, item_id, items, now)
            outcome.update(added=sync.added, removed=sync.removed, refused=sync.refused)
        except (GoogleError, FeedError, aiohttp.ClientError, TimeoutError) as exc:
            message = f"google: {exc}" if str(exc) else f"google: {type(exc).__name__}"
            await conn.execute(
                "INSERT INTO cal_integration_errors (subscription_id, item_id, kind, message,"
                " occurred_at) VALUES ($1, $2, 'google', $3, $4)",
                google_subscription_id(item_id), item_id, message[:500], now)
            await conn.execute(
                "UPDATE cal_google_targets SET last_error = $2, next_sync_at = $3"
                " WHERE item_id = $1", item_id, message[:500],
                now + timedelta(seconds=self.interval_s))
            log.warning("google calendar sync failed", extra={
                "alert": "google_calendar", "category": "integration",
                "item_id": str(item_id)})
            return {"status": "error", "error": "google", "detail": message}
        await conn.execute(
            "UPDATE cal_google_targets SET sync_token = $2, last_synced_at = $3,"
            " next_sync_at = $4, last_error = NULL WHERE item_id = $1",
            item_id, token, now, now + timedelta(seconds=self.interval_s))
        return outcome

    async def _push(self, conn: Any, item_id: UUID, calendar_id: str,
                    outcome: dict[str, Any]) -> None:
        assert self.client is not None
        rows = await conn.fetch(
            "SELECT e.*, g.sequence AS pushed, g.deleted FROM cal_entries e"
            " LEFT JOIN cal_google_events g ON g.item_id = e.item_id AND g.entry_id = e.entry_id"
            " WHERE e.item_id = $1 AND e.kind = 'booking'"
            " AND (g.entry_id IS NULL OR g.sequence < e.sequence) ORDER BY e.starts_at",
            item_id)
        for entry in rows:
            gone = entry["status"] in ("cancelled", "expired")
            event_id = event_id_of(entry)
            if gone:
                if entry["pushed"] is not None and not entry["deleted"]:
                    await self.client.delete_event(calendar_id, event_id)
                    outcome["deleted"] += 1
            else:
                await self.client.put_event(calendar_id, event_body(entry))
                outcome["pushed"] += 1
            await conn.execute(
                "INSERT INTO cal_google_events (item_id, entry_id, google_event_id, sequence,"
                " deleted) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (item_id, entry_id)"
                " DO UPDATE SET sequence = EXCLUDED.sequence, deleted = EXCLUDED.deleted",
                item_id, entry["entry_id"], event_id, entry["sequence"], gone)

    async def _pull(self, conn: Any, item_id: UUID, items: list[dict[str, Any]],
                    now: datetime) -> Any:
        item = await self.repo.get(item_id, cls=Item)
        zone = await item_zone(self.repo, item)
        for event in items:
            event_id = str(event.get("id", ""))
            if not event_id or event_id.startswith(EVENT_PREFIX):
                continue  # ours: the booking is the truth
            if event.get("status") == "cancelled" or "start" not in event:
                await conn.execute(
                    "DELETE FROM cal_google_remote WHERE item_id = $1 AND event_id = $2",
                    item_id, event_id)
                continue
            start, end = _when(event["start"], zone), _when(event["end"], zone)
            await conn.execute(
                "INSERT INTO cal_google_remote (item_id, event_id, starts_at, ends_at, opaque,"
                " summary) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (item_id, event_id)"
                " DO UPDATE SET starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,"
                " opaque = EXCLUDED.opaque, summary = EXCLUDED.summary",
                item_id, event_id, start, end, event.get("transparency") != "transparent",
                str(event.get("summary", ""))[:200])
        remote = await conn.fetch(
            "SELECT * FROM cal_google_remote WHERE item_id = $1 AND opaque AND ends_at > $2",
            item_id, now)
        periods = [BusyPeriod(r["event_id"], r["starts_at"], r["ends_at"], r["summary"])
                   for r in remote if r["ends_at"] > r["starts_at"]]
        return await sync_blocks(self.repo, self.db, subscription_id=google_subscription_id(
            item_id), item_id=item_id, periods=periods, now=now, actor="google-calendar")


def _when(value: dict[str, Any], zone: Any) -> datetime:
    if "dateTime" in value:
        instant = datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
        return (instant if instant.tzinfo else instant.replace(tzinfo=zone)).astimezone(UTC)
    return local_midnight(date.fromisoformat(value["date"]), zone)
