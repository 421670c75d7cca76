"""The email archive: the record, in the log, of finished emails removed from the outbox.

The outbox (``notif_outbox``) is operational state, not a read model: each email is
decided once, from the log, and its delivery status changes as it is sent. Finished ones
(sent, bounced, dead, skipped) are removed after MIDAS_EMAIL_RETENTION_DAYS; each removal
records which (their dedupe keys: the cause, never an address) in this one aggregate's
stream, so the log keeps what the table no longer shows.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from midas.domain.availability import require_aware
from midas.domain.email_archive_events import (
    EMAIL_ARCHIVE_ARCHIVED,
    EMAIL_ARCHIVE_STARTED,
)

ARCHIVE_ID = uuid5(UUID(int=0), "midas:email-archive")


class EmailArchive(Aggregate):
    """Counts what it archived; the keys themselves are in its events only."""

    @event(EMAIL_ARCHIVE_STARTED.event_name)
    def __init__(self) -> None:
        self.archived = 0

    @classmethod
    def start(cls) -> EmailArchive:
        # `Started` is made by the library from `@event("Started")` on `__init__`.
        return cls._create(cls.Started, id=ARCHIVE_ID)  # type: ignore[attr-defined]

    def archive(self, dedupe_keys: list[str], by_status: dict[str, int],
                finished_before: datetime) -> None:
        """Record that these emails, finished before `finished_before`, left the outbox."""
        if not dedupe_keys:
            return
        self._archived(dedupe_keys=sorted(dedupe_keys), by_status=dict(by_status),
                       finished_before=require_aware(finished_before).isoformat())

    @event(EMAIL_ARCHIVE_ARCHIVED.event_name)
    def _archived(self, dedupe_keys: list[str], by_status: dict[str, int],
                  finished_before: str) -> None:
        self.archived += len(dedupe_keys)
