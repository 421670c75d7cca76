"""Read replicas: PostgreSQL streaming replicas that queries read from.

A replica replays the primary's write-ahead log, read models and their checkpoints
together, so a query that reads a replica sees every read model exactly as the primary
had it at some earlier moment: read-your-writes holds by waiting, on that replica, until
the projections' checkpoints there have reached the position the client asks for
(``midas.http.consistency``). NOTIFY does not reach a standby, so that wait polls.

A watcher checks every replica each ``check_s``: one that cannot be reached, or whose log
is more than ``max_lag`` events behind the primary's, is left out until it is back; with
none left, queries read the primary. A connection that fails to open on a replica also
falls back to the primary at once (and leaves the replica out until the next check).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from midas.background import stop_task
from midas.eventstore.database import Database
from midas.eventstore.outages import is_unavailable

log = logging.getLogger(__name__)
_STATE_SQL = "SELECT coalesce(max(position), 0) AS head, pg_is_in_recovery() AS standby" \
             " FROM events"


class Reader(Protocol):
    """What a query needs of a database: a connection to read with."""

    def acquire(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]: ...


@dataclass
class Replica:
    name: str  # host:port, for logs (never the password)
    db: Database
    healthy: bool = False
    lag: int | None = None  # events behind the primary at the last check


class Replicas:
    def __init__(
        self, primary: Database, dsns: Sequence[str], *, max_lag: int, check_s: float,
        pool_max_size: int = 10, statement_timeout_s: float = 30.0,
    ) -> None:
        self.primary = primary
        self.replicas = [Replica(_name(dsn), Database(
            dsn, primary.schema, max_size=pool_max_size,
            statement_timeout_s=statement_timeout_s, connect_timeout_s=2.0))
            for dsn in dsns]
        self._max_lag = max_lag
        self._check_s = check_s
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Pools open without connecting; the first check says which replicas serve."""
        for replica in self.replicas:
            await replica.db.open()
        await self.check()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="midas-replicas",
                                             context=contextvars.Context())

    async def close(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        for replica in self.replicas:
            await replica.db.close()

    def pick(self) -> Replica | None:
        """A replica in service (each in turn), or None: read the primary."""
        serving = [r for r in self.replicas if r.healthy]
        return serving[next(self._turn) % len(serving)] if serving else None

    def reader(self, replica: Replica) -> Reader:
        return _FallingBack(self, replica)

    def left_out(self, replica: Replica, why: str) -> None:
        if replica.healthy:
            log.warning("read replica left out", extra={"replica": replica.name, "why": why})
        replica.healthy = False

    async def check(self) -> None:
        """Measure each replica against the primary's head; leave out the unfit."""
        try:
            async with self.primary.acquire() as conn:
                head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM events",
                                           timeout=2)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return  # the primary is out of reach: nothing to measure against
        await asyncio.gather(*(self._check(replica, head) for replica in self.replicas))

    async def _check(self, replica: Replica, primary_head: int) -> None:
        try:
            async with replica.db.acquire() as conn:
                row = await conn.fetchrow(_STATE_SQL, timeout=2)
        except Exception as exc:
            if not is_unavailable(exc) and not isinstance(exc, asyncpg.PostgresError):
                raise
            replica.lag = None
            self.left_out(replica, f"unreachable ({type(exc).__name__})")
            return
        replica.lag = max(primary_head - row["head"], 0)
        if replica.lag > self._max_lag:
            self.left_out(replica, f"{replica.lag} events behind")
        elif not replica.healthy:
            replica.healthy = True
            log.info("read replica in service", extra={"replica": replica.name,
                                                        "lag": replica.lag})

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            try:
                await self.check()
            except Exception:
                log.exception("read replica check failed")


class _FallingBack:
    """A replica's connections; the primary's when one cannot be opened."""

    def __init__(self, replicas: Replicas, replica: Replica) -> None:
        self._replicas, self._replica = replicas, replica

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(self._replica.db.acquire())
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self._replicas.left_out(self._replica, f"unreachable ({type(exc).__name__})")
                conn = await stack.enter_async_context(self._replicas.primary.acquire())
            yield conn


def _name(dsn: str) -> str:
    """host:port of a DSN, without credentials."""
    rest = dsn.split("://", 1)[-1].rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0] or "replica"
