"""The payments process manager: a projection with its own checkpoint that issues commands.

Payment.Succeeded -> confirm the booking (or re-reserve after an expired hold, or refund);
Payment.RefundRequested -> carry the refund out with the provider; Booking.Cancelled ->
release the deposit hold and ask for the policy refund. The handlers (wired by
`midas.app`) are idempotent and name the causing event as their causation id, so a replay
or a retried batch never doubles an effect. A handler that fails rolls the batch back and
the runner retries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import asyncpg

from midas.domain.errors import DomainError
from midas.eventstore import RecordedEvent

Reaction = Callable[[RecordedEvent], Awaitable[object]]


class PaymentsProcess:
    name = "payments_process"
    wants_metadata = True  # its commands carry the causing event's correlation id
    tables: tuple[str, ...] = ()

    def __init__(self, reactions: Mapping[str, Reaction]) -> None:
        self._reactions = dict(reactions)
        self.handles = frozenset(self._reactions)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            reaction = self._reactions.get(event.type)
            if reaction is None:
                continue
            try:
                await reaction(event)
            except DomainError:
                # The rule no longer allows it (state moved on): nothing to do, on purpose.
                continue
