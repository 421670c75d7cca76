"""Process managers: events in, commands out, each with a checkpoint of its own.

Every process manager here has one shape. Its module builds, from the running service
(`app`), its reactions: a mapping from the event types it reacts to, to the command each
one issues. `ProcessManager` runs them as a projection without a read model: a runner
hands it batches of events and moves its checkpoint. Its module also builds its timers
where it has any: the due-task kinds (rows written by the `due_tasks` projection) the
scheduler runs, mapped to the command each one issues. `midas.app` wires them.

Reactions are idempotent and name the causing event as their causation id (`caused_by`),
so a replay or a retried batch never doubles an effect. A reaction the rules no longer
allow (the state moved on) does nothing, on purpose. A reaction that fails otherwise
rolls the batch back and the runner retries it.

A process manager with state of its own (`loyalty`: what each booking and customer has
paid) keeps it in its tables, written in the batch's transaction, and decides from it
which command to issue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from midas import tracing
from midas.domain.errors import DomainError
from midas.eventstore import RecordedEvent

Reaction = Callable[[RecordedEvent], Awaitable[object]]
Timer = Callable[[UUID, datetime], Awaitable[object]]


def caused_by(actor: str, cause: str, event: RecordedEvent | None = None) -> dict[str, Any]:
    """The metadata of a command a process manager (or a timer) issues: who, why and,
    reacting to an event, that event as its causation and its correlation."""
    meta: dict[str, Any] = {"actor": actor, "actor_role": None, "cause": cause}
    if event is not None:  # deterministic command ids: the causing event
        causation = f"{event.stream_id}:{event.version}"
        meta["causation_id"] = causation
        meta["correlation_id"] = event.metadata.get("correlation_id") or causation
    return meta


class ProcessManager:
    """A projection with its own checkpoint that runs a reaction for each event it handles."""

    wants_metadata = True  # its commands carry the causing event's correlation id
    traces_events = True  # each reaction is a span in the trace of its event
    tables: tuple[str, ...] = ()

    def __init__(self, name: str, reactions: Mapping[str, Reaction]) -> None:
        self.name = name
        self._reactions = dict(reactions)
        self.handles = frozenset(self._reactions)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            reaction = self._reactions.get(event.type)
            if reaction is None:
                continue
            try:
                with tracing.event_span(f"{self.name} {event.type}", event.metadata, {
                        "midas.event.position": event.position}):
                    await reaction(event)
            except DomainError:
                # The rule no longer allows it (state moved on): nothing to do, on purpose.
                continue
