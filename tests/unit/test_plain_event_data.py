"""The event store's check of event data (midas.eventstore.codec.check_plain): what it
accepts, what it refuses, and where it says the problem is."""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum
from typing import Any

import pytest

from midas.eventstore.codec import InvalidEventData, check_plain
from midas.limits import BIGINT_MAX, BIGINT_MIN


class Season(StrEnum):
    PEAK = "peak"


PLAIN: list[Any] = [
    None, True, False, 0, BIGINT_MAX, BIGINT_MIN, "", "Zürich \u2014 \U0001f6e5", [], {},
    (1, "a"), {"quote": {"lines": [{"amount": 1, "season": "peak"}], "extras": []}},
    Season.PEAK,  # a str subclass: accepted as the string it is
    OrderedDict(a=1),  # a Mapping that is not a dict
    {"a": [[[{"b": [None, 0, ""]}]]]},
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_are_accepted(value: Any) -> None:
    check_plain(value)


@pytest.mark.parametrize(("value", "path", "reason"), [
    (BIGINT_MAX + 1, "$", "integer beyond the 64-bit range"),
    (BIGINT_MIN - 1, "$", "integer beyond the 64-bit range"),
    ({"a": {"b": [0, BIGINT_MAX + 1]}}, "$.a.b[1]", "integer beyond the 64-bit range"),
    ({"name": "Ada\x00"}, "$.name", "NUL (U+0000) in a string"),
    ({"changes": {"bad\x00key": 1}}, "$.changes", "NUL (U+0000) in a key"),
    ({"note": "x\ud800y"}, "$.note", "a lone surrogate (U+D800) in a string"),
    ({"lines": [{"k\udfff": 1}]}, "$.lines[0]", "a lone surrogate (U+DFFF) in a key"),
    ({"amount": 1.0}, "$.amount", "float is not plain event data"),
    ({1: "a"}, "$", "non-string key of type int"),
    ({"at": {1, 2}}, "$.at", "set is not plain event data"),
    ([0, b"bytes"], "$[1]", "bytes is not plain event data"),
    # deep in containers of each kind, after plain values of every kind
    ({"a": [None, True, "x", 1, (1, 2.5)]}, "$.a[4][1]", "float is not plain event data"),
    ({"a": [{"ok": 1}, {"b": {1: 2}}]}, "$.a[1].b", "non-string key of type int"),
    ([[["fine", "x\x00"]]], "$[0][0][1]", "NUL (U+0000) in a string"),
    ({"a": {"b": {"c": [BIGINT_MIN - 1]}}}, "$.a.b.c[0]", "integer beyond the 64-bit range"),
], ids=repr)
def test_what_the_log_cannot_hold_is_refused_where_it_is(value: Any, path: str,
                                                           reason: str) -> None:
    with pytest.raises(InvalidEventData) as refused:
        check_plain(value)
    assert (refused.value.path, refused.value.reason) == (path, reason)


def test_the_message_names_where_never_the_value() -> None:
    with pytest.raises(InvalidEventData) as refused:
        check_plain({"password": "s3cret\x00"})
    assert "s3cret" not in str(refused.value)
    assert str(refused.value) == "$.password: NUL (U+0000) in a string"
