"""Which failures mean "PostgreSQL is out of reach right now", not "the request is wrong".

One classification for every caller: the HTTP layer answers these with 503 and
``Retry-After``; background workers (projections, scheduler, notifier, outbox) wait and
try again instead of logging a crash.
"""

from __future__ import annotations

import asyncpg

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    # Sockets: refused, reset, unreachable; and every timeout (asyncio's TimeoutError is
    # the builtin one, an OSError): connecting, acquiring from the pool, a command.
    OSError,
    # Class 08: the connection failed or was closed mid-operation
    # (ConnectionDoesNotExistError, ConnectionFailureError, ...).
    asyncpg.PostgresConnectionError,
    # Client side: "connection is closed", "pool is closing", ...
    asyncpg.InterfaceError,
    # A protocol state left broken by a connection the server dropped while it sat idle
    # in the pool, e.g. "cannot switch to state 12" after `pg_ctl restart -m fast`.
    asyncpg.InternalClientError,
    # Class 57P: the server is stopping, crashed, or not accepting connections yet.
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
_MAX_CAUSES = 8  # how far along ``raise ... from`` chains to look


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached right now; the caller may retry later."""


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` is a connection-level failure: retrying later may succeed.

    An exception raised ``from`` one counts too, and a group counts when all its members
    do. asyncpg's interface errors that are also ValueErrors (a value it cannot encode, a
    bad client configuration) are about the request or the deployment, not the
    connection: they do not count.
    """
    for _ in range(_MAX_CAUSES):
        if isinstance(exc, BaseExceptionGroup):
            return all(is_unavailable(member) for member in exc.exceptions)
        if isinstance(exc, DatabaseUnavailable):
            return True
        if isinstance(exc, CONNECTION_ERRORS) and not isinstance(exc, ValueError):
            return True
        if exc.__cause__ is None:
            return False
        exc = exc.__cause__
    return False
