"""Field types of every command and query model: the rules of ``midas.limits``.

Each type validates (a 422 naming the field) and documents its rule in /openapi.json (a
pattern for text, minimum and maximum for integers). Every text and integer field of a
request model uses one of them, or a narrower pattern, enum or format of its own
(tests/unit/test_request_fields.py checks the published document).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, SecretStr
from pydantic_core import PydanticCustomError

from midas.limits import (
    BIGINT_MAX,
    BIGINT_MIN,
    FREE_TEXT_PATTERN,
    INT_MAX,
    LINE_PATTERN,
    MAX_AMOUNT,
    MAX_RATE,
    in_bigint,
    refused_character,
    unstorable,
)

SECRET_PATTERN = r"^[^\u0000]*$"
MAX_JSON_DEPTH = 10
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def _refuse(what: str) -> PydanticCustomError:
    return PydanticCustomError("refused_character", "must not contain {what}", {"what": what})


def _line(value: str) -> str:
    problem = refused_character(value)
    if problem is not None:
        raise _refuse(problem)
    return value


def _free_text(value: str) -> str:
    problem = refused_character(value, free_text=True)
    if problem is not None:
        raise _refuse(problem)
    return value


def _secret(value: SecretStr) -> SecretStr:
    problem = unstorable(value.get_secret_value())
    if problem is not None:
        raise _refuse(problem)
    return value


def _within_years(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise _out_of_range()
    return value


def _day_within_years(value: date) -> date:
    if not EARLIEST.date() <= value <= LATEST.date():
        raise _out_of_range()
    return value


def _out_of_range() -> PydanticCustomError:
    return PydanticCustomError(
        "out_of_range", "must be between {earliest} and {latest}",
        {"earliest": EARLIEST.date().isoformat(), "latest": LATEST.date().isoformat()})


def _plain_json(value: Mapping[str, Any]) -> Mapping[str, Any]:
    problem = _json_problem(value, "", 0)
    if problem is not None:
        raise PydanticCustomError("unstorable_json", "{problem}", {"problem": problem})
    return value


def _json_problem(value: Any, path: str, depth: int) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored, naming where; None if it can."""
    if depth > MAX_JSON_DEPTH:
        return f"{path or 'the value'}: nested more than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        problem = refused_character(value, free_text=True)
        return f"{path or 'the value'}: must not contain {problem}" if problem else None
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        return None if in_bigint(value) else f"{path}: integer out of range (64-bit)"
    if isinstance(value, list):
        for index, item in enumerate(value):
            if problem := _json_problem(item, f"{path}[{index}]", depth + 1):
                return problem
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if problem := refused_character(str(key)):
                return f"{path}: a key must not contain {problem}"
            if problem := _json_problem(item, f"{path}.{key}" if path else str(key),
                                        depth + 1):
                return problem
        return None
    return f"{path}: {type(value).__name__} is not JSON"


# -- text --------------------------------------------------------------------------------

# One line: no control character at all (names, subjects, references, search terms).
Line = Annotated[str, AfterValidator(_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
# Free text: tab, line feed and carriage return allowed (notes, message bodies).
FreeText = Annotated[
    str, AfterValidator(_free_text), Field(json_schema_extra={"pattern": FREE_TEXT_PATTERN})
]
# A secret (password, token): anything PostgreSQL and the hashes can take, never echoed.
Secret = Annotated[
    SecretStr, AfterValidator(_secret), Field(json_schema_extra={"pattern": SECRET_PATTERN})
]
# Free-form JSON (a client's error context): storable strings and keys, 64-bit integers.
JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json),
                       Field(json_schema_extra={"propertyNames": {"pattern": LINE_PATTERN}})]

# -- numbers -----------------------------------------------------------------------------

BigInt = Annotated[int, Field(ge=BIGINT_MIN, le=BIGINT_MAX)]  # any 64-bit integer
Position = Annotated[int, Field(ge=0, le=BIGINT_MAX)]  # a log position
Count = Annotated[int, Field(ge=0, le=INT_MAX)]
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]  # money, minor units
PositiveAmount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
Rate = Annotated[int, Field(gt=0, le=MAX_RATE)]  # an item's price per hour or day
RowId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]  # a bigserial id

# -- path parameters (``Api.route(path_params=...)``; a UUID unless declared) -------------

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]  # a read model's name
# A location's code: country and place, e.g. US-CA (locations are data, so a pattern).
LocationCode = Annotated[str, Field(pattern=r"^[A-Z]{2}-[A-Z]{2}$")]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]  # ISO 4217


def one_of(values: Iterable[str]) -> Any:
    """The type of a path parameter that takes one of ``values`` (an enum in the
    document; anything else is 404)."""
    return Literal[tuple(values)]

# -- time --------------------------------------------------------------------------------

# An instant with its offset, between 1900 and 9000: far from the ends of Python's and
# PostgreSQL's calendars, so adding a year or converting zones never overflows.
Instant = Annotated[AwareDatetime, AfterValidator(_within_years)]
Day = Annotated[date, AfterValidator(_day_within_years)]  # a calendar day, same years
