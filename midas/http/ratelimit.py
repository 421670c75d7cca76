"""A rate limiter shared by every service process: fixed windows counted in PostgreSQL.

One atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` per hit, so the limit holds
across processes and machines. Generic: any key (``login:ip:...``, ``payments:ip:...``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from midas.config import Settings
from midas.eventstore import Database
from midas.http.problems import Problem

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds until the window resets; 0 when allowed

    def __bool__(self) -> bool:
        return self.allowed


class RateLimiter:
    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self._db = db
        self.clock = clock

    async def hit(self, key: str, limit: int, window_s: int) -> Verdict:
        """Count one hit on ``key``; refused beyond ``limit`` hits per ``window_s``."""
        now = self.clock()
        epoch = now.timestamp()
        start = datetime.fromtimestamp(epoch - epoch % window_s, UTC)
        async with self._db.acquire() as conn:
            hits = await conn.fetchval(
                "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1)"
                " ON CONFLICT (key) DO UPDATE SET"
                " hits = CASE WHEN rate_limits.window_start = EXCLUDED.window_start"
                "        THEN rate_limits.hits + 1 ELSE 1 END,"
                " window_start = EXCLUDED.window_start"
                " RETURNING hits",
                f"{key}:{window_s}", start,
            )
        if hits <= limit:
            return Verdict(True, 0)
        reset = start + timedelta(seconds=window_s)
        return Verdict(False, max(1, math.ceil((reset - now).total_seconds())))

    async def purge(self, older_than_s: int = 24 * 3600) -> int:
        """Drop windows long over (housekeeping; never needed for correctness)."""
        async with self._db.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM rate_limits WHERE window_start < $1",
                self.clock() - timedelta(seconds=older_than_s),
            )
        return int(status.split()[-1])


def client_ip(request: web.Request, settings: Settings) -> str:
    if settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.remote or "unknown"


RATE_LIMITED = {429: "Too many requests from this address: see Retry-After"}  # declared


async def enforce(
    limiter: RateLimiter, key: str, limit: int, window_s: int, what: str = "requests"
) -> None:
    """Raise a 429 problem with Retry-After when ``key`` is over its limit."""
    verdict = await limiter.hit(key, limit, window_s)
    if not verdict:
        raise Problem(
            429, f"Too many {what}; try again in {verdict.retry_after} s.",
            title="Too many requests", headers={"Retry-After": str(verdict.retry_after)},
        )
