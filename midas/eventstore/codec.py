"""Canonical JSON for event payloads and the hash chain over the log.

Event data and metadata must be plain JSON values (str, int, bool, None, lists and
objects with string keys). Floats are refused: money is integer minor units and rates
are Decimal strings, and only plain values survive the trip through ``jsonb``
unchanged, which the hash chain relies on. Strings and keys holding what PostgreSQL
cannot store (NUL, lone surrogates) and integers beyond a bigint are refused too: a
projector copying one into a read model would fail on it for ever (``midas.limits``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from midas.limits import BIGINT_MAX, BIGINT_MIN, SURROGATE, in_bigint, unstorable

GENESIS_HASH = bytes(32)


class InvalidEventData(TypeError):
    """Event data the log must not hold; ``path`` says where (``$.changes.name``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def check_plain(value: Any) -> None:
    """Raise InvalidEventData unless ``value`` is plain, storable JSON data without
    floats. The message names where, never the value."""
    if not _surely_plain(value):
        _check(value, "$")


def _surely_plain(value: Any) -> bool:
    """True when ``value`` is built of exactly dict, list, tuple, str, int, bool and None,
    with storable strings and keys and bigint integers. It checks exact types and keeps
    no paths, so it costs a fraction of ``_check``, which runs (and names the problem)
    only when this answers False: for a subclass of a plain type too, which ``_check`` may
    still accept."""
    return _plain_items((value,))


def _plain_items(items: Iterable[Any]) -> bool:
    # One loop per container, its scalars checked inline: a call per value (most of an
    # event's values are strings and integers) cost a third of the walk.
    for item in items:
        kind = type(item)
        if kind is str:
            if "\x00" in item or not (item.isascii() or SURROGATE.search(item) is None):
                return False
        elif kind is int:
            if not BIGINT_MIN <= item <= BIGINT_MAX:
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or "\x00" in key or not (
                        key.isascii() or SURROGATE.search(key) is None):
                    return False
            if not _plain_items(item.values()):
                return False
        elif kind is list or kind is tuple:
            if not _plain_items(item):
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def _check(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not in_bigint(value):
            raise InvalidEventData(path, "integer beyond the 64-bit range")
        return
    if isinstance(value, str):
        if problem := unstorable(value):
            raise InvalidEventData(path, f"{problem} in a string")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEventData(path, f"non-string key of type {type(key).__name__}")
            if problem := unstorable(key):
                raise InvalidEventData(path, f"{problem} in a key")
            _check(item, f"{path}.{key}")
        return
    raise InvalidEventData(path, f"{type(value).__name__} is not plain event data")


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys: the form hashed by the chain."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def encode(value: Mapping[str, Any]) -> str:
    check_plain(value)
    return canonical(value).decode()


decode = orjson.loads  # the inverse of encode; a plain alias keeps catch-up reads fast


def event_hash(
    previous: bytes,
    position: int,
    stream_id: UUID,
    version: int,
    type_: str,
    data: bytes,
    metadata: bytes,
    recorded_at: datetime,
) -> bytes:
    """Hash of one event, covering the previous event's hash (the chain)."""
    header = orjson.dumps([position, str(stream_id), version, type_, recorded_at.isoformat()])
    digest = hashlib.sha256(previous)
    digest.update(header)
    digest.update(b"\n")
    digest.update(data)
    digest.update(b"\n")
    digest.update(metadata)
    return digest.digest()
