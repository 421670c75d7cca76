"""Events as a version of Midas before the store's checks wrote them: the poisonous
events an operator may find in an old log (the hash chain computed as for any other)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from midas.eventstore import EventStore, NewEvent, StreamAppend, codec

METADATA = {"actor": "test", "actor_role": "system"}


async def append_unchecked(store: EventStore, monkeypatch: pytest.MonkeyPatch,
                           stream: UUID, type_: str, data: dict[str, Any]) -> int:
    """Append one event to a new stream without the store's checks; its position."""
    with monkeypatch.context() as unchecked:
        unchecked.setattr(codec, "check_plain", lambda *args, **kwargs: None)
        result = await store.append([StreamAppend(stream, 0, [NewEvent(type_, data,
                                                                       METADATA)])])
    return result.last_position
