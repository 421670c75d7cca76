"""A small generic scheduler: due tasks as rows, claimed with FOR UPDATE SKIP LOCKED.

Rows of `due_tasks` are written by a projection from events (deterministic ids, so a replay
never doubles a task). Any number of processes run a worker; each claims due rows in a
transaction that stays open while the task's command runs, so no two run one task. A task
whose command succeeds or has become pointless (a domain error) is deleted; an unexpected
failure is retried later with a growing delay.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from midas.background import Background
from midas.domain.errors import DomainError
from midas.eventstore import Database, is_unavailable

log = logging.getLogger(__name__)

TaskHandler = Callable[[UUID, datetime], Awaitable[object]]


class ManualClock:
    """A clock for tests (an app's CLOCK is any `() -> datetime`): `advance` or `set` it."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._fixed: datetime | None = None

    def now(self) -> datetime:
        if self._fixed is not None:
            return self._fixed
        return datetime.now(UTC) + self._offset

    def __call__(self) -> datetime:
        return self.now()

    def advance(self, delta: timedelta) -> None:
        if self._fixed is not None:
            self._fixed += delta
        else:
            self._offset += delta

    def set(self, instant: datetime) -> None:
        self._fixed = instant.astimezone(UTC)


@dataclass(frozen=True)
class DueTask:
    id: str
    kind: str
    aggregate_id: UUID
    due_at: datetime
    attempts: int


class Scheduler(Background):
    """Runs due tasks by kind. `delays` postpones a kind past its stored due time
    (e.g. automatic check-in 2 h after the end), so settings may change it."""

    task_name = "midas-scheduler"

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, TaskHandler],
        clock: Callable[[], datetime],
        *,
        delays: Mapping[str, timedelta] | None = None,
        batch_size: int = 50,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.clock = clock
        self.delays = dict(delays or {})
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._task: asyncio.Task[None] | None = None
        self.tasks_run = 0

    async def run_due(self, now: datetime | None = None) -> int:
        """Claim and run the tasks due at `now` (the clock's time by default)."""
        now = now or self.clock()
        done = 0
        async with self.db.acquire() as conn, conn.transaction():
            # `due_at <= $4` lets the due_at index bound the scan: no task is due
            # before its stored time less the smallest delay.
            rows = await conn.fetch(
                "SELECT id, kind, aggregate_id, due_at, attempts FROM due_tasks"
                " WHERE due_at <= $4"
                " AND due_at + coalesce(($2::jsonb ->> kind)::interval, interval '0') <= $1"
                " ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED",
                now, _delays_json(self.delays), self.batch_size,
                now - min((*self.delays.values(), timedelta(0))),
            )
            for row in rows:
                task = DueTask(**dict(row))
                if await self._run(task, now):
                    await conn.execute("DELETE FROM due_tasks WHERE id = $1", task.id)
                    done += 1
                else:
                    await conn.execute(
                        "UPDATE due_tasks SET attempts = attempts + 1, last_error = $2,"
                        " due_at = $3 WHERE id = $1",
                        task.id, "failed; see logs", now + _backoff(task.attempts),
                    )
        self.tasks_run += done
        return done

    async def next_due(self) -> datetime | None:
        """When the earliest task falls due (its stored time shifted by its kind's delay)."""
        async with self.db.acquire() as conn:
            return await conn.fetchval(
                "SELECT min(due_at + coalesce(($1::jsonb ->> kind)::interval, interval '0'))"
                " FROM due_tasks", _delays_json(self.delays))

    async def _run(self, task: DueTask, now: datetime) -> bool:
        handler = self.handlers.get(task.kind)
        if handler is None:
            log.warning("no handler for due task", extra={"kind": task.kind})
            return True
        try:
            await handler(task.aggregate_id, now)
        except DomainError as exc:  # the task no longer applies (state moved on)
            log.info("due task skipped", extra={"task": task.id, "reason": str(exc)})
        except Exception:
            log.exception("due task failed", extra={"task": task.id})
            return False
        return True

    async def _loop(self) -> None:
        while True:
            try:
                while await self.run_due() == self.batch_size:
                    pass
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("scheduler pass failed")
            await asyncio.sleep(self.poll_interval_s)


def task_id(kind: str, aggregate_id: UUID | str) -> str:
    """Deterministic: one task of a kind per aggregate."""
    return f"{kind}:{aggregate_id}"


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** attempts * 5, 3600))


def _delays_json(delays: Mapping[str, timedelta]) -> str:
    return json.dumps({kind: f"{int(d.total_seconds())} seconds" for kind, d in delays.items()})
