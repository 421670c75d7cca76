"""Which failures count as "the database is out of reach" (503 and Retry-After)."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base

from midas.eventstore import DatabaseUnavailable, is_unavailable

CONNECTION_FAILURES = [
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.exceptions.ProtocolError("unexpected message"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.PostgresConnectionError("connection failure"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(101, "Network is unreachable"),
    TimeoutError(),  # connecting, a pool acquire or a command past its timeout
    DatabaseUnavailable("the database pool is closed"),
]

NOT_CONNECTION_FAILURES = [
    ValueError("bad"),
    RuntimeError("bug"),
    KeyError("id"),
    asyncpg.UniqueViolationError("duplicate key"),
    asyncpg.DataError("invalid input for query argument $1"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg_base.DataError("invalid input for query argument $1"),  # can't encode: a bad value
    asyncpg.ClientConfigurationError("invalid connection option"),
]


@pytest.mark.parametrize("exc", CONNECTION_FAILURES, ids=lambda e: type(e).__name__)
def test_connection_level_failures_are_unavailable(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize("exc", NOT_CONNECTION_FAILURES, ids=lambda e: type(e).__name__)
def test_other_failures_are_not(exc: BaseException) -> None:
    assert not is_unavailable(exc)


def test_a_failure_raised_from_a_connection_failure_is_unavailable() -> None:
    try:
        try:
            raise asyncpg.InternalClientError("cannot switch to state 12")
        except asyncpg.InternalClientError as cause:
            raise RuntimeError("loading the booking failed") from cause
    except RuntimeError as exc:
        assert is_unavailable(exc)
    try:
        try:
            raise ValueError("bad")
        except ValueError:
            raise RuntimeError("while handling") from None
    except RuntimeError as exc:
        assert not is_unavailable(exc)


def test_a_group_is_unavailable_only_when_every_member_is() -> None:
    assert is_unavailable(ExceptionGroup("all", [TimeoutError(), asyncpg.InterfaceError("x")]))
    assert not is_unavailable(ExceptionGroup("mixed", [TimeoutError(), ValueError("bad")]))
