"""The events of the EmailArchive aggregate (midas.domain.email_archive): payloads and types.

Readers import the type (``midas.domain.events``): ``event.type == X`` selects,
``X.of(event)`` reads the payload. A field with ``NotRequired`` may be absent from events
recorded before it was added.
"""

from __future__ import annotations

from typing import TypedDict

from midas.domain.events import EventType


class EmailArchiveStarted(TypedDict):
    pass


EMAIL_ARCHIVE_STARTED = EventType("EmailArchive.Started", EmailArchiveStarted)


class EmailArchiveArchived(TypedDict):
    dedupe_keys: list[str]
    by_status: dict[str, int]
    finished_before: str


EMAIL_ARCHIVE_ARCHIVED = EventType("EmailArchive.Archived", EmailArchiveArchived)
