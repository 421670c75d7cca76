"""Ids parsed from event data meet the UUIDs asyncpg returns and those of ``uuid``."""

from __future__ import annotations

import uuid

import orjson
import pytest

from projections.batch import uuid_of


def test_an_id_parsed_is_the_same_key_as_any_other_uuid_of_it() -> None:
    std = uuid.uuid4()
    parsed = uuid_of(str(std))
    assert isinstance(parsed, uuid.UUID) and parsed == std and str(parsed) == str(std)
    assert {std: "found"}[parsed] == "found" and {parsed: "found"}[std] == "found"
    assert uuid_of(std.hex) == std


@pytest.mark.parametrize("text", ["", "not-a-uuid", f"{{{uuid.uuid4()}}}"])
def test_what_is_not_a_plain_uuid_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        uuid_of(text)


def test_it_goes_into_json_as_text_only() -> None:
    with pytest.raises(TypeError):  # as a stream id read from the log: str() it first
        orjson.dumps(uuid_of(str(uuid.uuid4())))
