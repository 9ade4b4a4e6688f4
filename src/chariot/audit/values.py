"""One canonical text per value kind, alike for every database's Python values.

Source values arrive as the value contract has them (``chariot.sources.values``), sink
values as their drivers give them (psycopg, neo4j). ``encode`` gives a value's canonical
text by *kind*; a value of the wrong type never encodes like a right one (it gets a ``?``
text of its own), so a sink holding ``3.0`` where the source has ``3`` differs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

Kind = Literal[
    "int",
    "decimal",
    "text",
    "joined",  # a list of text stored joined by its delimiter (split columns, SETs)
    "textset",  # a list compared as a set (the graph's value-keyed nodes)
    "textlist",  # a list compared in order
    "float",
    "bool",
    "date",
    "datetime",
    "timestamptz",
    "duration",
    "bytes",
    "json",
]
# Kinds both SQL dialects encode alike (``canonical.mysql_encoded`` / ``postgres_encoded``).
SQL_KINDS = frozenset({"int", "decimal", "text", "joined"})


# -- canonical text ------------------------------------------------------------------------


def encode(kind: Kind, value: Any, *, scale: int = 0, delimiter: str = ",") -> str:
    """One value's canonical text."""
    if value is None:
        return "N"
    value = _native(value)
    encoder = _ENCODERS[kind]
    text = encoder(value, scale, delimiter)
    return text if text is not None else f"?{value!r}"


def display(kind: Kind, value: Any, *, scale: int = 0, delimiter: str = ",") -> Any:
    """A JSON-friendly value for reports."""
    if value is None:
        return None
    value = _native(value)
    if kind == "textset" and _is_strings(value):
        return sorted(set(value))
    if kind == "joined" and _is_strings(value):
        return delimiter.join(value)
    if kind in ("int", "text", "joined", "bool", "float") and isinstance(
        value, int | str | bool | float
    ):
        return value
    text = encode(kind, value, scale=scale, delimiter=delimiter)
    return text if not text.startswith("?") else repr(value)


def _native(value: Any) -> Any:
    """neo4j.time values -> Python's; buffers -> bytes."""
    if type(value).__module__.startswith("neo4j") and hasattr(value, "to_native"):
        if type(value).__name__ == "Duration":
            return value  # no exact native form; handled by the duration encoder
        return value.to_native()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def _text(value: str) -> str:
    return f"{len(value)}:{value}"


def _is_strings(value: Any) -> bool:
    return isinstance(value, list | tuple | set) and all(isinstance(v, str) for v in value)


Encoder = Callable[[Any, int, str], str | None]


def _int(value: Any, scale: int, delimiter: str) -> str | None:
    if type(value) is int:
        return str(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))  # numeric(20): bigint unsigned in PostgreSQL
    return None


def _decimal(value: Any, scale: int, delimiter: str) -> str | None:
    """Exact decimal text with ``scale`` places. The graph's float (decimals of at most 15
    digits) counts when it is exactly the double of that text."""
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")  # str() would write 0E-8 where SQL writes 0.00000000
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        text = f"{value:.{scale}f}"
        return text if float(text) == value else None
    return None


def _string(value: Any, scale: int, delimiter: str) -> str | None:
    return _text(value) if isinstance(value, str) else None


def _joined(value: Any, scale: int, delimiter: str) -> str | None:
    if isinstance(value, str):
        return _text(value)
    return _text(delimiter.join(value)) if isinstance(value, list) and _is_strings(value) else None


def _textset(value: Any, scale: int, delimiter: str) -> str | None:
    """Distinct elements, sorted, joined by the split's delimiter (which no element of a
    split holds): the same text as the joined form of the sorted list."""
    return _text(delimiter.join(sorted(set(value)))) if _is_strings(value) else None


def _textlist(value: Any, scale: int, delimiter: str) -> str | None:
    return _list(list(value)) if isinstance(value, list | tuple) and _is_strings(value) else None


def _list(values: list[str]) -> str:
    return "[" + ",".join(_text(v) for v in values) + "]"


def _float(value: Any, scale: int, delimiter: str) -> str | None:
    return repr(value) if type(value) is float else None


def _bool(value: Any, scale: int, delimiter: str) -> str | None:
    return ("t" if value else "f") if type(value) is bool else None


def _date(value: Any, scale: int, delimiter: str) -> str | None:
    return value.isoformat() if type(value) is date else None


def _datetime(value: Any, scale: int, delimiter: str) -> str | None:
    if type(value) is datetime and value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    return None


def _timestamptz(value: Any, scale: int, delimiter: str) -> str | None:
    if type(value) is datetime and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return None


def _duration(value: Any, scale: int, delimiter: str) -> str | None:
    if type(value) is timedelta:
        return str((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds)
    if type(value).__name__ == "Duration" and hasattr(value, "months"):  # neo4j.time
        if value.months or value.nanoseconds % 1000:
            return None
        micros = value.nanoseconds // 1000
        return str((value.days * 86_400 + value.seconds) * 1_000_000 + micros)
    return None


def _bytes(value: Any, scale: int, delimiter: str) -> str | None:
    return value.hex() if isinstance(value, bytes) else None


def _json(value: Any, scale: int, delimiter: str) -> str | None:
    """JSON text -> one text per JSON value (keys sorted, numbers exact)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        return None
    return _json_text(parsed)


def _json_text(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{_text(k)}:{_json_text(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value.normalize()) if value else "0"
    if isinstance(value, str):
        return _text(value)
    return json.dumps(value)  # true, false, null


_ENCODERS: dict[str, Encoder] = {
    "int": _int,
    "decimal": _decimal,
    "text": _string,
    "joined": _joined,
    "textset": _textset,
    "textlist": _textlist,
    "float": _float,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
    "timestamptz": _timestamptz,
    "duration": _duration,
    "bytes": _bytes,
    "json": _json,
}
