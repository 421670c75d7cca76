"""What Midas stores, and within which bounds: one rule for every way in.

PostgreSQL cannot store U+0000 (NUL) in ``text`` or ``jsonb``, nor a lone UTF-16
surrogate (U+D800-U+DFFF: not UTF-8 at all), and its integer columns are ``bigint`` or
``integer``. A value outside these rules that reached the event log would fail every
projector that copies it into a read model, forever. So the HTTP models refuse them
(``midas.http.fields``), the event store refuses them again before an append is queued
(``midas.eventstore.codec``), and text from outside (calendar feeds) is cleaned of them.

Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) are refused in
one-line text (names, subjects, references); free text (notes, messages) may hold tab,
line feed and carriage return. The rules are documented in docs/security.md.
"""

from __future__ import annotations

import re

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # PostgreSQL bigint
INT_MAX = 2**31 - 1  # PostgreSQL integer

# Money in minor units. Amounts are summed into bigint counters (KPIs, balances), so an
# amount stays far below BIGINT_MAX: nine thousand of the largest still fit in one sum.
MAX_AMOUNT = 10**15
# An item's rate per hour or day: a year-long booking of it at the dearest service level,
# season, insurance and tax (about 33,000 times the rate) stays below MAX_AMOUNT.
MAX_RATE = 10**10

SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_FREE_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# The same rules as JSON Schema patterns (ECMA-262), published in /openapi.json.
LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
FREE_TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (NUL, lone surrogate), or None."""
    if "\x00" in text:
        return "NUL (U+0000)"
    if not text.isascii():
        found = SURROGATE.search(text)
        if found is not None:
            return f"a lone surrogate (U+{ord(found.group()):04X})"
    return None


def refused_character(text: str, *, free_text: bool = False) -> str | None:
    """The first character ``text`` may not hold, described; None if it is acceptable.

    One-line text refuses every control character; free text allows tab, line feed and
    carriage return.
    """
    problem = unstorable(text)
    if problem is not None:
        return problem
    found = (_FREE_TEXT_CONTROL if free_text else _CONTROL).search(text)
    if found is not None:
        return f"a control character (U+{ord(found.group()):04X})"
    return None


def in_bigint(value: int) -> bool:
    return BIGINT_MIN <= value <= BIGINT_MAX


def replace_unstorable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD: for values written
    before they were refused, read back so that no projector can fail on them."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text if text.isascii() else SURROGATE.sub("\ufffd", text)


def storable_text(text: str, *, free_text: bool = False) -> str:
    """``text`` without what one-line (or free) text may not hold: for text from outside
    that is kept rather than refused (a calendar event's summary)."""
    text = SURROGATE.sub("\ufffd", text)
    return (_FREE_TEXT_CONTROL if free_text else _CONTROL).sub("", text)
