"""What the auth middleware checks on every request, cached per process.

An access token is good while its account exists, is active, still has the token's role
and the token is not revoked; a hold also needs the account's email verified. Those facts
change rarely and every change is announced (a trigger notifies the ``access`` channel,
see migrations/085 and 096), so each process keeps the answers and drops them all on any
announcement, on a reconnection (announcements may have been missed), and when this
process itself changed them (``forget``). While announcements are not being received,
every request asks the database.
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from midas.eventstore.database import Database
from midas.eventstore.notifier import Notifier
from midas.security.credentials import Access, access_of

ACCESS_CHANNEL = "access"


class AccessCache:
    def __init__(self, db: Database, notifier: Notifier, *, size: int = 10_000) -> None:
        self._db = db
        self._notifier = notifier
        self._size = size
        self._known: OrderedDict[tuple[UUID, str | None], Access | None] = OrderedDict()
        self._generation = 0
        notifier.listen(ACCESS_CHANNEL, lambda _payload: self.forget())

    def forget(self) -> None:
        self._known.clear()
        self._generation += 1

    async def access(self, account_id: UUID, jti: str | None) -> Access | None:
        """The account and token as the middleware checks them; None: no such account."""
        key = (account_id, jti)
        if key in self._known and self._notifier.connected.is_set():
            self._known.move_to_end(key)
            return self._known[key]
        generation = self._generation
        async with self._db.acquire() as conn:
            found = await access_of(conn, account_id, jti)
        if generation == self._generation and self._notifier.connected.is_set():
            self._known[key] = found  # nothing changed while we asked
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return found
