"""Personal data in events, encrypted per data subject (crypto-shredding, GDPR).

An aggregate declares which fields of which events are personal, as dotted paths::

    personal_fields = {"Registered": ("email", "name"), "ProfileChanged": ("changes.email",)}

When its events are saved, every personal string value is replaced by an *envelope*
``pii:v1:<base64url(nonce || AES-256-GCM ciphertext+tag)>`` under the key of the data
subject (the aggregate's id; additional data: that id, so an envelope cannot be moved to
another subject). The envelope is plain JSON, so the hash chain covers it and it never
changes. Keys live in ``subject_keys`` (one row per subject, created by a ``Statement`` in
the append of the subject's first personal event). Erasure sets the key to NULL
(tombstone, ``erased_at``): every envelope of that subject then reads as ``ERASED`` for
ever, while the events, their hashes and every non-personal field stay as they were.

Values that are not envelopes (events written before this scheme) pass through as they
are: they cannot be shredded (see docs/privacy.md).

Personal values are checked like any event data (``codec.check_plain``: no NUL, no lone
surrogate) *before* they are sealed: once sealed, the store could no longer see them, and
the projector that opens them would fail on them.

Envelope encryption of the keys themselves: when the process has a key-encryption key
(``MIDAS_PII_MASTER_KEY``, set once at start-up by ``configure_master_key``), every new
subject key is stored *wrapped*: ``b"w1" || nonce || AES-256-GCM(KEK, key, ad=subject)``
(62 bytes; an unwrapped key is exactly 32, so the two never look alike). ``load_keys``
unwraps wrapped keys and returns unwrapped ones as they are (written before the KEK).
"""

from __future__ import annotations

import base64
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Aggregate
from pydantic import SecretStr

from midas.config import KEY_SIZE, MASTER_KEY_SETTING, decode_master_key
from midas.eventstore.codec import check_plain
from midas.eventstore.database import Database
from midas.eventstore.store import (
    CacheStamp,
    EventStorePort,
    NewEvent,
    RecordedEvent,
    Statement,
)
from midas.limits import replace_unstorable

ERASED = "[erased]"
PREFIX = "pii:v1:"
KEYS_TABLE = "subject_keys"
_NONCE = 12
WRAPPED = b"w1"  # version marker of a wrapped subject key
WRAPPED_SIZE = len(WRAPPED) + _NONCE + KEY_SIZE + 16  # + the GCM tag

Paths = tuple[str, ...]


class PiiError(Exception):
    """An envelope that cannot be opened with its subject's key (tampered, wrong key)."""


class SubjectErased(Exception):
    """Personal data was about to be written for a subject whose key is shredded."""

    def __init__(self, subject: UUID) -> None:
        super().__init__(f"the personal data of {subject} has been erased")
        self.subject = subject


# -- envelopes --------------------------------------------------------------------------


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(key: bytes, subject: UUID, value: str) -> str:
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), subject.bytes)
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_value(key: bytes | None, subject: UUID, value: Any) -> Any:
    """The clear value of an envelope; ERASED without a key; other values unchanged.

    A NUL sealed before values were checked is read as U+FFFD: the store refuses it
    now, and a projector copying it into a read model would fail on it for ever."""
    if not is_sealed(value):
        return value
    if key is None:
        return ERASED
    raw = value[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        clear = AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], subject.bytes).decode()
    except (InvalidTag, ValueError) as exc:
        raise PiiError(f"a personal field of {subject} cannot be decrypted") from exc
    return replace_unstorable(clear)


def transform(data: Mapping[str, Any], paths: Iterable[str], fn: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``fn`` applied to the string values at the dotted paths."""
    result = dict(data)
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in result:
            continue
        value = result[head]
        if rest:
            if isinstance(value, Mapping):
                result[head] = transform(value, (rest,), fn)
        elif isinstance(value, str):
            result[head] = fn(value)
    return result


def has_personal(data: Mapping[str, Any], paths: Iterable[str]) -> bool:
    found: list[bool] = []

    def note(value: Any) -> Any:
        found.append(True)
        return value

    transform(data, paths, note)
    return bool(found)


# -- which fields are personal -----------------------------------------------------------


def personal_paths(aggregates: Iterable[type[Aggregate]]) -> dict[str, Paths]:
    """Stored type name (``Account.Registered``) -> personal paths, from the aggregates."""
    specs: dict[str, Paths] = {}
    for aggregate in aggregates:
        declared: Mapping[str, Sequence[str]] = getattr(aggregate, "personal_fields", {})
        for event_name, paths in declared.items():
            specs[f"{aggregate.__name__}.{event_name}"] = tuple(paths)
    return specs


def _default_specs() -> dict[str, Paths]:
    from midas.domain.registry import AGGREGATES

    return personal_paths(AGGREGATES)


# -- the key-encryption key (process-wide) -----------------------------------------------


class _Keyring:
    """The process's KEK. One per process, like its settings: projectors and CLI commands
    are built without settings, yet every ``load_keys`` must unwrap with it."""

    master: bytes | None = None


_keyring = _Keyring()


def configure_master_key(secret: SecretStr | None) -> None:
    """Set (or, with None, clear) the process's KEK: once at start-up, from settings."""
    value = secret.get_secret_value() if secret is not None else ""
    _keyring.master = decode_master_key(value) if value else None


def wrap_key(master: bytes, subject: UUID, key: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return WRAPPED + nonce + AESGCM(master).encrypt(nonce, key, subject.bytes)


def is_wrapped(stored: bytes) -> bool:
    return len(stored) == WRAPPED_SIZE and stored.startswith(WRAPPED)


def unwrap_key(master: bytes | None, subject: UUID, stored: bytes) -> bytes:
    """The subject's clear key from its stored form (wrapped or, before the KEK, not)."""
    if len(stored) == KEY_SIZE:
        return stored
    if not is_wrapped(stored):
        raise PiiError(f"the key of {subject} has an unknown format")
    if master is None:
        raise PiiError(f"the key of {subject} is wrapped: set {MASTER_KEY_SETTING}")
    body = stored[len(WRAPPED):]
    try:
        return AESGCM(master).decrypt(body[:_NONCE], body[_NONCE:], subject.bytes)
    except InvalidTag as exc:
        raise PiiError(f"the key of {subject} does not unwrap with this"
                       f" {MASTER_KEY_SETTING}") from exc


def stored_key(subject: UUID, key: bytes) -> bytes:
    """How a new key is stored: wrapped when the process has a KEK."""
    master = _keyring.master
    return key if master is None else wrap_key(master, subject, key)


# -- keys --------------------------------------------------------------------------------

_MISSING: Any = object()


async def load_keys(
    conn: asyncpg.Connection, subjects: Iterable[UUID]
) -> dict[UUID, bytes | None]:
    """Subject -> clear key; None for an erased subject; absent for a subject without a
    row. Raises PiiError for a wrapped key the process's KEK cannot unwrap."""
    ids = list(set(subjects))
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT account_id, key FROM {KEYS_TABLE} WHERE account_id = ANY($1::uuid[])", ids
    )
    master = _keyring.master
    return {r["account_id"]: (unwrap_key(master, r["account_id"], bytes(r["key"]))
                              if r["key"] is not None else None) for r in rows}


def insert_key(subject: UUID, key: bytes) -> Statement:
    """The new subject's key, in the append of its first personal event."""
    return Statement(
        f"INSERT INTO {KEYS_TABLE} (account_id, key) VALUES ($1, $2)",
        (subject, stored_key(subject, key)),
    )


async def wrap_unwrapped_keys(db: Database, *, batch_size: int = 1000) -> int:
    """Wrap every key stored before the KEK, in transactions of ``batch_size`` keys;
    how many were wrapped (0 on a second run). Refuses without a KEK, or when keys
    already wrapped do not unwrap with this one (the table would mix two KEKs)."""
    master = _keyring.master
    if master is None:
        raise PiiError(f"set {MASTER_KEY_SETTING} to wrap the subject keys")
    wrapped = 0
    async with db.acquire() as conn:
        await _check_master_key(conn, master)
        while batch := await _wrap_batch(conn, master, batch_size):
            wrapped += batch
    return wrapped


async def _check_master_key(conn: asyncpg.Connection, master: bytes) -> None:
    row = await conn.fetchrow(f"SELECT account_id, key FROM {KEYS_TABLE}"
                              f" WHERE length(key) <> {KEY_SIZE} LIMIT 1")
    if row is not None:
        unwrap_key(master, row["account_id"], bytes(row["key"]))


async def _wrap_batch(conn: asyncpg.Connection, master: bytes, size: int) -> int:
    async with conn.transaction():
        rows = await conn.fetch(
            f"SELECT account_id, key FROM {KEYS_TABLE} WHERE length(key) = {KEY_SIZE}"
            " ORDER BY account_id LIMIT $1 FOR UPDATE", size)
        await conn.executemany(
            f"UPDATE {KEYS_TABLE} SET key = $2 WHERE account_id = $1",
            [(r["account_id"], wrap_key(master, r["account_id"], bytes(r["key"])))
             for r in rows])
    return len(rows)


def shred_key(subject: UUID) -> Statement:
    """Delete the key for ever (a tombstone row remains: the subject is erased)."""
    return Statement(
        f"INSERT INTO {KEYS_TABLE} (account_id, key, erased_at) VALUES ($1, NULL, now())"
        " ON CONFLICT (account_id) DO UPDATE SET key = NULL,"
        f" erased_at = coalesce({KEYS_TABLE}.erased_at, now())",
        (subject,),
    )


def open_event(
    event: RecordedEvent, paths: Paths, keys: Mapping[UUID, bytes | None]
) -> RecordedEvent:
    key = keys.get(event.stream_id)  # no row: only clear values (or unreadable: erased)
    data = transform(event.data, paths, lambda v: open_value(key, event.stream_id, v))
    return event._replace(data=data)


async def open_events(
    conn: asyncpg.Connection,
    events: Sequence[RecordedEvent],
    specs: Mapping[str, Paths] | None = None,
) -> list[RecordedEvent]:
    """Events with their personal fields decrypted (ERASED once shredded), for readers
    such as projectors: one key query for the whole batch, no cache (an erasure is
    seen by the very next batch)."""
    specs = specs if specs is not None else _default_specs()
    needing = [e.stream_id for e in events
               if e.type in specs and has_personal(e.data, specs[e.type])]
    if not needing:
        return list(events)
    keys = await load_keys(conn, needing)
    return [open_event(e, specs[e.type], keys) if e.type in specs else e for e in events]


class PiiCodec:
    """The repository's field codec: seals personal fields on save, opens them on load.

    Keys read from the database are cached (LRU, ``cache_size``). A key generated for a
    new subject is never cached: it exists only if its append commits, and the next
    use reads it back. ``forget`` drops a subject from the cache (erasure here); with
    ``store``, a key is also read again once another process has appended to its
    subject's stream (an erasure there), as announced to the store.
    """

    def __init__(
        self, db: Database, specs: Mapping[str, Paths] | None = None, *,
        cache_size: int = 10_000, store: EventStorePort | None = None,
    ) -> None:
        self.db = db
        self.specs = dict(specs) if specs is not None else _default_specs()
        self._cache: OrderedDict[UUID, tuple[bytes | None, CacheStamp | None]] = OrderedDict()
        self._cache_size = cache_size
        self._store = store

    def personal(self, aggregate: Aggregate) -> bool:
        prefix = f"{type(aggregate).__name__}."
        return any(name.startswith(prefix) for name in self.specs)

    def forget(self, subject: UUID) -> None:
        self._cache.pop(subject, None)

    async def _key(self, subject: UUID) -> bytes | None:
        """The subject's key, None if erased, _MISSING if it has none yet."""
        cached = self._cache.get(subject)
        if cached is not None and self._current(subject, cached[1]):
            self._cache.move_to_end(subject)
            return cached[0]
        stamp = self._store.cache_stamp() if self._store is not None else None
        async with self.db.acquire() as conn:
            keys = await load_keys(conn, [subject])
        if subject not in keys:
            return _MISSING
        key = keys[subject]
        if self._cache_size > 0:
            self._cache[subject] = (key, stamp)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return key

    def _current(self, subject: UUID, stamp: CacheStamp | None) -> bool:
        return self._store is None or self._store.unchanged_since(subject, stamp)

    async def seal(
        self, aggregate: Aggregate, events: Sequence[NewEvent]
    ) -> tuple[list[NewEvent], list[Statement]]:
        subject = aggregate.id
        todo = [e.type in self.specs and has_personal(e.data, self.specs[e.type])
                for e in events]
        if not any(todo):
            return list(events), []
        for event, needed in zip(events, todo, strict=True):
            if needed:  # sealed, a NUL would pass the store's check and stop projectors
                check_plain(event.data)
        statements: list[Statement] = []
        key = await self._key(subject)
        if key is None:
            raise SubjectErased(subject)
        if key is _MISSING:
            key = new_key()
            statements.append(insert_key(subject, key))
        sealed = [
            NewEvent(e.type, transform(e.data, self.specs[e.type],
                                       lambda v: seal(key, subject, v)), e.metadata)
            if needed else e
            for e, needed in zip(events, todo, strict=True)
        ]
        return sealed, statements

    async def open(self, subject: UUID, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        if not any(e.type in self.specs and has_personal(e.data, self.specs[e.type])
                   for e in events):
            return list(events)
        key = await self._key(subject)
        keys = {} if key is _MISSING else {subject: key}
        return [open_event(e, self.specs[e.type], keys) if e.type in self.specs else e
                for e in events]
