"""Commands on one aggregate take turns within a process.

Optimistic concurrency alone lets every concurrent command on a busy aggregate load the
same version; all but one lose the append and retry, and under load a few exhaust their
retries and are refused although nothing was in their way (a hold on a free date of a
busy item). So a command attempt that loads an aggregate to change it
(``Repository.get(exclusive=True)`` inside ``retry_on_conflict``) first takes that
aggregate's lock in this process and keeps it until the attempt ends (saved, refused or
lost). Commands of other processes still race through the expected-version check, and
``retry_on_conflict`` still retries those losses.

A lock exists only while a command holds or awaits it, so memory does not grow with the
aggregates ever touched. A command waits for a turn at most ``wait_s``, then goes ahead
without it: the version check still guards the log, and two commands that would wait for
each other's second aggregate (A then B, B then A) cannot hang.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from uuid import UUID

log = logging.getLogger(__name__)
DEFAULT_ATTEMPTS = 8


class _Entry:
    """An aggregate someone holds. Its asyncio lock is made only once a second command
    wants the aggregate: an uncontended turn costs two dict operations, no await."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None
        self.users = 1  # holding or waiting; the one creating it, at first


class AggregateLocks:
    """One lock per aggregate id, present while anyone holds or awaits it."""

    def __init__(self, wait_s: float = 5.0) -> None:
        self.wait_s = wait_s
        self._entries: dict[UUID, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def take_free(self, key: UUID) -> _Entry | None:
        """``key``'s lock if nobody holds it, taken (its entry, for ``release``)."""
        if key in self._entries:
            return None
        self._entries[key] = entry = _Entry()
        return entry

    async def wait(self, key: UUID) -> _Entry | None:
        """``key``'s lock once its holders and earlier waiters are done; None (not
        taken) after ``wait_s`` without a turn."""
        entry = self._entries.get(key)
        if entry is None:
            return self.take_free(key)
        if entry.lock is None:  # the first contention: the holder's lock, taken for it
            entry.lock = asyncio.Lock()
            await entry.lock.acquire()  # free: returns at once
        entry.users += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await entry.lock.acquire()
            return entry
        except TimeoutError:
            log.warning("no turn on an aggregate in time; going ahead unserialised",
                        extra={"aggregate": str(key), "wait_s": self.wait_s})
            self._leave(key, entry)
            return None
        except BaseException:
            self._leave(key, entry)
            raise

    def release(self, key: UUID, entry: _Entry) -> None:
        if entry.lock is not None:
            entry.lock.release()
        self._leave(key, entry)

    def _leave(self, key: UUID, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._entries[key]


class CommandAttempt:
    """The locks one command attempt holds, and the retry budget of its repository."""

    __slots__ = ("_held", "attempts", "ended")

    def __init__(self) -> None:
        self.attempts = DEFAULT_ATTEMPTS
        self.ended = False
        self._held: list[tuple[AggregateLocks, UUID, _Entry]] = []

    async def take(self, locks: AggregateLocks, key: UUID) -> None:
        for held_locks, held_key, _ in self._held:
            if held_key == key and held_locks is locks:
                return  # already this attempt's turn (loaded twice, or a nested command)
        entry = locks.take_free(key) or await locks.wait(key)
        if entry is not None:
            self._held.append((locks, key, entry))

    def release_all(self) -> None:
        self.ended = True
        while self._held:
            locks, key, entry = self._held.pop()
            locks.release(key, entry)


_CURRENT: ContextVar[CommandAttempt | None] = ContextVar("midas_command_attempt", default=None)


def current_attempt() -> CommandAttempt | None:
    """The command attempt running here; None outside one, and in a task that was started
    during an attempt that has ended since (it inherited the variable, not the turn)."""
    attempt = _CURRENT.get()
    return None if attempt is None or attempt.ended else attempt


class command_attempt:
    """One attempt of a command; its locks are released when it ends. Inside another
    attempt (a command run by a command), the outer attempt's turn covers it.

    A class, not a generator-based context manager: it runs once per command."""

    __slots__ = ("_attempt", "_token")

    def __enter__(self) -> CommandAttempt:
        outer = current_attempt()
        if outer is not None:
            self._token = None
            self._attempt = outer
            return outer
        self._attempt = CommandAttempt()
        self._token = _CURRENT.set(self._attempt)
        return self._attempt

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._attempt.release_all()
