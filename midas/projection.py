"""The projection runner: read models built from the log, exactly once.

A projector applies a batch of events to its read-model tables; the runner commits
those changes and the projection's checkpoint in one transaction. The checkpoint row is
locked (``FOR UPDATE``) and re-read in every batch, so even two runners could never
apply one event twice; a session advisory lock makes one of them the leader anyway, so
any number of service processes can run while only one works.

A projector that fails on an event is set apart (the others go on), and retried alone
after an exponential back-off capped at ``max_retry_s``. The runner finds the event it
fails on, records it in ``projection_failures`` (position, scrubbed error, attempts,
next retry: shown by ``midas projections status`` and ``/ready``), logs the traceback
once and calls ``on_failure`` once per failing projection and position (the alert). An
operator who decides the event can never be applied has the projection pass over it
with ``midas projections skip`` (``projection_skips``): the log itself is never edited.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from midas import tracing
from midas.background import stop_task
from midas.eventstore.database import Database
from midas.eventstore.notifier import Notifier
from midas.eventstore.outages import is_unavailable
from midas.eventstore.store import EVENTS_CHANNEL, RecordedEvent, head_position, read_all
from midas.indexes import build_deferred_indexes
from midas.projection_failures import (
    ProjectionFailure,
    clear_failure,
    describe_error,
    failing_position,
    load_failures,
    record_failure,
    retry_delays,
)

log = logging.getLogger(__name__)
CHECKPOINTS_CHANNEL = "checkpoints"
FailureHook = Callable[[ProjectionFailure], Awaitable[None]]  # once per failure (alerts)


class Projector(Protocol):
    """Events reach ``apply`` without their metadata (``{}``) unless the projector has
    ``wants_metadata = True`` (process managers: their commands carry the causing event's
    correlation id), or the process traces (``midas.tracing``: an event's metadata carries
    the trace it belongs to). A projector that opens a span per event it reacts to says so
    with ``traces_events = True``; for the others the runner records, in each event's
    trace, that the projection applied it. Columns that something other than events
    writes may be listed in ``unverified_columns``: ``midas projections verify`` does not
    compare them. A non-unique index that ``apply`` reads by is named in ``indexes_read``: a rebuild
    keeps it, and builds the others after the rows (``midas.indexes``)."""

    @property
    def name(self) -> str: ...

    @property
    def handles(self) -> frozenset[str]:
        """Event types; the rest of the log is skipped."""

    @property
    def tables(self) -> tuple[str, ...]:
        """Read-model tables it owns, emptied on rebuild."""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Apply ``events`` inside the runner's transaction."""


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    leader: bool
    failure: ProjectionFailure | None = None

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


async def ensure_checkpoint(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(
        "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", name
    )


_POSITIONS_SQL = (  # with the events an operator had each projection skip, still ahead
    "SELECT c.name, c.position, (SELECT array_agg(s.position) FROM projection_skips s"
    " WHERE s.name = c.name AND s.position > c.position) AS skips"
    " FROM projection_checkpoints c WHERE c.name = ANY($1::text[])"
    " ORDER BY c.name"  # one lock order for every runner: no deadlocks between them
)
_PROGRESS_SQL = (
    "SELECT (SELECT coalesce(max(position), 0) FROM events) AS head,"
    " array_agg(name) AS names, array_agg(position) AS positions"
    " FROM projection_checkpoints WHERE name = ANY($1::text[])"
)
_ADVANCE_SQL = (
    "WITH moved AS (UPDATE projection_checkpoints SET position = $2, updated_at = now()"
    " WHERE name = ANY($1::text[]) RETURNING name, position)"
    " SELECT pg_notify($3, name || ':' || position) FROM moved"
)


async def behind(
    conn: asyncpg.Connection, projectors: Sequence[Projector]
) -> tuple[int, list[list[Projector]]]:
    """The head, and the projectors behind it in cohorts of equal position, front first.

    Projectors that run together stay at one position, so there is usually one cohort;
    a projection reset or added while the others run catches up as its own cohort
    without holding the others back.
    """
    row = await conn.fetchrow(_PROGRESS_SQL, [p.name for p in projectors])
    head, at = row["head"], dict(zip(row["names"] or (), row["positions"] or (), strict=True))
    cohorts: dict[int, list[Projector]] = {}
    for projector in projectors:
        position = at.get(projector.name, 0)
        if position < head:
            cohorts.setdefault(position, []).append(projector)
    return head, [cohorts[position] for position in sorted(cohorts, reverse=True)]


async def apply_batch(
    conn: asyncpg.Connection, db: Database, projectors: Sequence[Projector],
    batch_size: int, head: int,
) -> int | None:
    """Apply the next batch of events up to ``head`` to every projector, in one
    transaction with their checkpoints; the position reached, or None when none of them
    was behind.

    The log is read once for all of them; each projector gets the events it handles
    after its own checkpoint, which is locked (``FOR UPDATE``) and re-read here: the
    fence against applying an event twice.
    """
    if tracing.enabled():
        with tracing.span("projection batch", {
                "midas.projections": [p.name for p in projectors], "midas.head": head}):
            return await _apply_batch(conn, db, projectors, batch_size, head)
    return await _apply_batch(conn, db, projectors, batch_size, head)


async def _apply_batch(
    conn: asyncpg.Connection, db: Database, projectors: Sequence[Projector],
    batch_size: int, head: int,
) -> int | None:
    async with conn.transaction():
        rows = await conn.fetch(_POSITIONS_SQL + " FOR UPDATE OF c", [p.name for p in projectors])
        at = {r["name"]: r["position"] for r in rows}
        skips = {r["name"]: frozenset(r["skips"]) for r in rows if r["skips"]}
        lagging = [p for p in projectors if at.get(p.name, 0) < head]
        if not lagging:
            return None
        start = min(at.get(p.name, 0) for p in lagging)
        types = sorted(frozenset().union(*(p.handles for p in lagging)))
        bare = not tracing.enabled() and not any(
            getattr(p, "wants_metadata", False) for p in lagging)
        events = [e for e in await read_all(conn, start, batch_size, types, bare=bare)
                  if e.position <= head]
        end = head if len(events) < batch_size else events[-1].position
        writes = DeferredWrites(conn)
        for projector in lagging:
            after, handles = at.get(projector.name, 0), projector.handles
            mine = ([e for e in events if e.type in handles] if after == start else
                    [e for e in events if e.position > after and e.type in handles])
            if projector.name in skips:
                mine = [e for e in mine if e.position not in skips[projector.name]]
            if not mine:
                continue
            if tracing.enabled():
                with tracing.projector_span(projector.name, mine, own_spans=getattr(
                        projector, "traces_events", False)):
                    await projector.apply(writes, mine)
                    await writes.flush()  # its writes inside its span
            else:
                await projector.apply(writes, mine)
        await writes.flush()
        moved = [p.name for p in lagging if at.get(p.name, 0) < end]
        await conn.execute(_ADVANCE_SQL, moved, end, db.channel(CHECKPOINTS_CHANNEL))
    return end


_QUERIES = frozenset({
    "fetch", "fetchrow", "fetchval", "executemany", "copy_from_table", "copy_from_query",
    "copy_to_table", "copy_records_to_table",
})


class DeferredWrites:
    """The connection a projector writes through: its writes are pipelined.

    ``execute`` with arguments is queued (it answers "" instead of a status); any other
    call first sends what is queued, in order, runs of the same statement as one
    ``executemany`` (one round trip). The runner flushes after ``apply``, inside the
    batch's transaction, so a failing write still rolls the whole batch back.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._pending: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        if not args:
            await self.flush()
            return await self._conn.execute(query, timeout=timeout)
        self._pending.append((query, args))
        return ""

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        for query, group in itertools.groupby(pending, key=lambda write: write[0]):
            rows = [args for _, args in group]
            if len(rows) == 1:
                await self._conn.execute(query, *rows[0])
            else:
                await self._conn.executemany(query, rows)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in _QUERIES:
            return attr

        async def flushed_first(*args: Any, **kwargs: Any) -> Any:
            await self.flush()
            return await attr(*args, **kwargs)

        return flushed_first


async def reset(conn: asyncpg.Connection, projector: Projector) -> None:
    """Empty the read model and rewind its checkpoint, in one transaction."""
    async with conn.transaction():
        await ensure_checkpoint(conn, projector.name)
        await conn.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
            projector.name,
        )
        if projector.tables:
            await conn.execute(f"TRUNCATE {', '.join(projector.tables)}")
        await conn.execute(
            "UPDATE projection_checkpoints SET position = 0, updated_at = now() WHERE name = $1",
            projector.name,
        )


async def catch_up(
    db: Database, *projectors: Projector, batch_size: int = 500, connections: int = 2
) -> None:
    """Apply batches until the head (rebuilds run outside the service).

    The projectors are dealt into ``connections`` groups that catch up side by side, each
    reading the log once for all its projectors: one group's database work overlaps
    another's decoding (bench/projections: all ten together 6,100 log events/s this way,
    4,500 each on its own connection).
    """
    groups = [list(projectors[n::connections]) for n in range(connections)]
    await asyncio.gather(*(_catch_up(db, group, batch_size) for group in groups if group))


async def _catch_up(db: Database, projectors: list[Projector], batch_size: int) -> None:
    conn = await db.connect(keyed_only=True)
    try:
        for projector in projectors:
            await ensure_checkpoint(conn, projector.name)
        while True:
            head, cohorts = await behind(conn, projectors)
            if not cohorts:
                return
            for cohort in cohorts:
                await apply_batch(conn, db, cohort, batch_size, head)
    finally:
        await conn.close()


class ProjectionRunner:
    """Keeps projectors up to date in this process, on one connection.

    Each projector has its own leader lock (a session advisory lock), so any number of
    processes can run while one leads each projector. The projectors this runner leads
    are applied together: one read of the log and one transaction per batch for all of
    them. A projector that fails is set apart and retried alone, so it holds no other
    back: after ``retry_s``, then twice as long each time, at most ``max_retry_s``.
    """

    def __init__(
        self,
        db: Database,
        projectors: Sequence[Projector],
        notifier: Notifier,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retry_s: float = 0.5,
        max_retry_s: float = 60.0,
        linger_s: float = 0.0,
        batch_interval_s: float = 0.0,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.db = db
        self.projectors = list(projectors)
        self._notifier = notifier
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._on_failure = on_failure
        self._linger_s = linger_s
        self._batch_interval_s = batch_interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._led: list[Projector] = []
        self._set_apart: dict[str, float] = {}  # failing projector -> retry at (loop time)
        self._synced_at = 0.0  # when the retry times were last read from the database
        self.batches_applied = 0

    @property
    def name(self) -> str:
        return ",".join(p.name for p in self.projectors)

    @property
    def is_leader(self) -> bool:
        return bool(self._led)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"projections-{self.name}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, then stop."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.db.connect(custom_plans=True)
                for projector in self.projectors:
                    await ensure_checkpoint(conn, projector.name)
                await self._lead(conn)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("projections failed", extra={"projection": self.name})
                await self._sleep(self._retry_s)
            finally:
                self._led = []
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        next_claim = 0.0
        while not self._stopping.is_set():
            if len(self._led) < len(self.projectors) and loop.time() >= next_claim:
                await self._claim(conn)
                next_claim = loop.time() + self._poll_interval_s
            began = loop.time()
            applied, reached_head = await self._cycle(conn)
            if applied:
                if reached_head:  # caught up: let the next events gather for a while
                    await self._sleep(began + self._batch_interval_s - loop.time())
                continue
            wait_s = self._until_retry() if self._set_apart else self._poll_interval_s
            waiter = asyncio.ensure_future(self._notifier.wait(EVENTS_CHANNEL, wait_s))
            stopper = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
            if self._linger_s:
                # Under load, let a few more commits land: one batch then carries them all.
                await self._sleep(self._linger_s)

    async def _claim(self, conn: asyncpg.Connection) -> None:
        """Take the leader lock of every projector no other process leads (and build
        the indexes a rebuild cut short left deferred)."""
        claimed = []
        for projector in self.projectors:
            if projector not in self._led and await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)",
                self.db.lock_key(f"projection:{projector.name}"),
            ):
                await build_deferred_indexes(conn, [projector.name])
                self._led.append(projector)
                claimed.append(projector.name)
        if claimed:  # a projection another leader left failing keeps its back-off here
            now = asyncio.get_running_loop().time()
            for name, delay in (await retry_delays(conn, claimed)).items():
                self._set_apart.setdefault(name, now + delay)

    def _until_retry(self) -> float:
        now = asyncio.get_running_loop().time()
        soonest = min(self._set_apart.values(), default=now)
        return min(max(soonest - now, 0.0), self._poll_interval_s)

    def delay_after(self, attempts: int) -> float:
        """The back-off after the ``attempts``-th failure at one event."""
        return min(self._retry_s * 2 ** min(attempts - 1, 40), self._max_retry_s)

    async def _sync_retries(self, conn: asyncpg.Connection) -> None:
        """Adopt the recorded retry times (an operator's skip makes one due at once),
        at most once per poll interval while something is set apart."""
        now = asyncio.get_running_loop().time()
        if not self._set_apart or now - self._synced_at < self._poll_interval_s:
            return
        self._synced_at = now
        delays = await retry_delays(conn, list(self._set_apart))
        for name in self._set_apart:
            self._set_apart[name] = min(self._set_apart[name], now + delays.get(name, 0.0))

    async def _cycle(self, conn: asyncpg.Connection) -> tuple[bool, bool]:
        """One batch for each cohort of led projectors behind the head: whether any ran,
        and whether every one that ran reached the head."""
        await self._sync_retries(conn)
        now = asyncio.get_running_loop().time()
        ready = [p for p in self._led if self._set_apart.get(p.name, 0.0) <= now]
        if not ready:
            return False, False
        head, cohorts = await behind(conn, ready)
        reached = [await self._apply(conn, cohort, head) for cohort in cohorts]
        applied = [position for position in reached if position is not None]
        return bool(applied), all(position >= head for position in applied)

    async def _apply(
        self, conn: asyncpg.Connection, cohort: list[Projector], head: int
    ) -> int | None:
        """The batch's position reached, or None when nothing was applied."""
        try:
            reached = await apply_batch(conn, self.db, cohort, self._batch_size, head)
        except Exception as exc:
            if is_unavailable(exc) or conn.is_closed():
                raise
            if len(cohort) > 1:  # find the culprit: each alone
                alone = [await self._apply(conn, [p], head) for p in cohort]
                return min((r for r in alone if r is not None), default=None)
            return await self._failed(conn, cohort[0], head)
        for projector in cohort:
            if self._set_apart.pop(projector.name, None) is not None:
                await self._recovered(conn, projector)
        if reached is not None:
            self.batches_applied += 1
        return reached

    async def _failed(
        self, conn: asyncpg.Connection, projector: Projector, head: int
    ) -> int | None:
        """Apply the failed batch's events one at a time up to the one that fails, then
        record that failure and set the projector apart until its next retry."""
        reached = None
        for _ in range(self._batch_size):
            try:
                step = await apply_batch(conn, self.db, [projector], 1, head)
            except Exception as again:
                if is_unavailable(again) or conn.is_closed():
                    raise
                await self._set_apart_at_next_event(conn, projector, head, again)
                return reached
            if step is None:
                break
            reached = step
            if step >= head:
                break
        # One event at a time, the failure did not come back (it was not the events').
        if self._set_apart.pop(projector.name, None) is not None:
            await self._recovered(conn, projector)
        return reached

    async def _set_apart_at_next_event(
        self, conn: asyncpg.Connection, projector: Projector, head: int, exc: Exception
    ) -> None:
        position = await failing_position(conn, projector.name, projector.handles) or head
        failure = await record_failure(conn, projector.name, position, describe_error(exc),
                                       self.delay_after)
        delay = self.delay_after(failure.attempts)
        self._set_apart[projector.name] = asyncio.get_running_loop().time() + delay
        context = {"projection": projector.name, "position": position,
                   "attempts": failure.attempts, "retry_in_s": round(delay, 3)}
        if failure.attempts > 1:  # the traceback was logged at the first attempt
            log.warning("projection still failing", extra=context)
            return
        log.error("projection failed", exc_info=exc, extra=context)
        if self._on_failure is not None:
            try:
                await self._on_failure(failure)
            except Exception:
                log.warning("projection failure not alerted", exc_info=True, extra=context)

    async def _recovered(self, conn: asyncpg.Connection, projector: Projector) -> None:
        if await clear_failure(conn, projector.name):
            log.info("projection recovered", extra={"projection": projector.name})

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


async def projection_status(
    db: Database, projectors: Sequence[Projector]
) -> list[ProjectionStatus]:
    async with db.acquire() as conn:
        head = await head_position(conn)
        rows = {
            r["name"]: r["position"]
            for r in await conn.fetch("SELECT name, position FROM projection_checkpoints")
        }
        failures = await load_failures(conn, [p.name for p in projectors])
        statuses = []
        for projector in projectors:
            key = db.lock_key(f"projection:{projector.name}")
            leader = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((classid::bigint << 32) | objid::bigint) = $1)",
                key,
            )
            statuses.append(ProjectionStatus(projector.name, rows.get(projector.name, 0), head,
                                             leader, failures.get(projector.name)))
        return statuses
