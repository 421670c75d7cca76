"""Saving accounts: one atomic append with the sign-in state that changes with them.

An email is claimed by the unique index of ``auth_accounts`` in the append's transaction;
losing that race is ``EmailTaken``. Changes are decided on fresh state again after a
version race.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from midas.domain.accounts import Account, EmailTaken
from midas.eventstore import AppendResult, Repository, Statement, retry_on_conflict

Change = Callable[[Account], list[Statement]]


async def save_accounts(
    repo: Repository, accounts: Sequence[Account], statements: Sequence[Statement],
    metadata: dict[str, Any],
) -> AppendResult:
    """Append the accounts' events with ``statements`` (in order) in one transaction."""
    try:
        return await repo.save(*accounts, metadata=metadata, statements=statements)
    except asyncpg.UniqueViolationError:
        raise EmailTaken() from None


async def change_account(
    repo: Repository, account_id: UUID, change: Change, metadata: dict[str, Any],
) -> AppendResult:
    """Load, apply ``change(account) -> statements``, save; again on a version race."""

    async def attempt() -> AppendResult:
        account = await repo.get(account_id, cls=Account)
        return await save_accounts(repo, [account], change(account), metadata)

    return await retry_on_conflict(attempt)
