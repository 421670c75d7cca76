"""Passwords: bcrypt, hashed off the event loop, same cost whether or not the account exists."""

from __future__ import annotations

import asyncio
import functools

import bcrypt

MIN_CHARS = 10
MAX_BYTES = 72  # bcrypt ignores anything longer


class WeakPassword(ValueError):
    pass


def check_password_rules(password: str) -> None:
    if len(password) < MIN_CHARS:
        raise WeakPassword(f"at least {MIN_CHARS} characters")
    if len(password.encode()) > MAX_BYTES:
        raise WeakPassword(f"at most {MAX_BYTES} bytes (UTF-8)")


async def hash_password(password: str, rounds: int) -> str:
    check_password_rules(password)
    salt = bcrypt.gensalt(rounds)
    hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
    return hashed.decode()


async def verify_password(password: str, hashed: str | None, rounds: int) -> bool:
    """Check ``password``; with no hash, spend the same time on a dummy and say no."""
    target = hashed or str(await asyncio.to_thread(_dummy_hash, rounds))
    candidate = password.encode()[:MAX_BYTES]
    ok = await asyncio.to_thread(_check, candidate, target.encode())
    return ok and hashed is not None


def _check(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed stored hash never signs anyone in
        return False


@functools.cache
def _dummy_hash(rounds: int) -> str:
    return bcrypt.hashpw(b"midas-dummy-password", bcrypt.gensalt(rounds)).decode()


async def warm_up(rounds: int) -> None:
    """Compute the dummy hash now, so the first unknown-email login is not faster."""
    await asyncio.to_thread(_dummy_hash, rounds)
