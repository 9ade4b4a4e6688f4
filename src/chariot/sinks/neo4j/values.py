"""Source values as Neo4j properties, by the output column's Neo4j type.

The source reader yields the VALUE CONTRACT's Python types (``int``, ``Decimal``, naive
and UTC-aware ``datetime``, ``timedelta``, ``list[str]`` for a SET, ``bytes``...); each
converter turns one into what the driver sends as that Neo4j type. ``None`` stays ``None``
(the property is absent). A value that cannot become the type raises ``ValueError``: the
row is then a reject, never a failed batch.

Converters also accept what an older reader returns (a naive datetime for a zoned column:
UTC; a SET as its comma-separated text; ``bit(n)`` as bytes; ``tinyint(1)`` as 0/1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Converter = Callable[[Any], Any]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def converter(neo4j_type: str) -> Converter:
    """The converter for a Neo4j type of the project file (``integer``, ``list<string>``...)."""
    try:
        convert = _CONVERTERS[neo4j_type]
    except KeyError:
        raise ValueError(f"no Neo4j conversion for type {neo4j_type!r}") from None

    def safe(value: Any) -> Any:
        return None if value is None else convert(value)

    return safe


def column_converter(neo4j_type: str) -> Callable[[list[Any]], list[Any]]:
    """``converter`` over a whole column: the column itself when every value already is
    what the driver sends (checked in C, by exact type: a change batch's ints, floats and
    strings mostly are), else value by value."""
    convert = converter(neo4j_type)
    kept = _KEPT.get(neo4j_type)

    def convert_all(values: list[Any]) -> list[Any]:
        if kept is not None:
            types = set(map(type, values))
            types.discard(type(None))
            if types <= {kept} and (kept is not int or _in_int64(values, len(types))):
                return values
        return [convert(value) for value in values]

    return convert_all


def _in_int64(values: list[Any], kinds: int) -> bool:
    if not kinds:
        return True  # all None
    present = values if None not in values else [v for v in values if v is not None]
    return min(present) >= INT64_MIN and max(present) <= INT64_MAX


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes):  # bit(n) as the driver returns it
        value = int.from_bytes(value, "big")
    elif isinstance(value, Decimal | float):
        if value != int(value):
            raise ValueError(f"{value} is not an integer")
        value = int(value)
    elif not isinstance(value, int):
        value = int(str(value).strip())
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} is outside Neo4j's 64-bit integers")
    return value


def _float(value: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")  # UnicodeDecodeError is a ValueError
    return str(value)  # Decimal and numeric(20) as their exact text, uuid as text


def _boolean(value: Any) -> bool:
    if isinstance(value, bytes):  # bit(1)
        return int.from_bytes(value, "big") != 0
    if isinstance(value, bool | int):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _local_datetime(value: Any) -> dt.datetime:
    value = _datetime(value)
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _zoned_datetime(value: Any) -> dt.datetime:
    value = _datetime(value)
    if value.tzinfo is None:  # a reader that does not mark UTC yet: the session is UTC
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(str(value))


def _duration(value: Any) -> Any:
    from neo4j.time import Duration

    if not isinstance(value, dt.timedelta):
        raise ValueError(f"{value!r} is not a duration")
    # Seconds and microseconds only: a MySQL TIME has no days (838:59:59 is 838 hours).
    return Duration(seconds=value.days * 86_400 + value.seconds, microseconds=value.microseconds)


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):  # a SET as MySQL spells it: "a,b"; "" is the empty set
        return value.split(",") if value else []
    if isinstance(value, list | tuple):
        return [_string(element) for element in value if element is not None]
    raise ValueError(f"{value!r} is not a list")


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise ValueError(f"{type(value).__name__} is not bytes")


# Neo4j type -> the Python type whose values pass as they are (``column_converter``).
_KEPT: dict[str, type] = {"integer": int, "float": float, "string": str}

_CONVERTERS: dict[str, Converter] = {
    "integer": _integer,
    "float": _float,
    "string": _string,
    "boolean": _boolean,
    "date": _date,
    "local datetime": _local_datetime,
    "zoned datetime": _zoned_datetime,
    "duration": _duration,
    "list<string>": _string_list,
    "bytes": _bytes,
}
