"""The value contract: what the source reader yields for each source type.

Most columns arrive from the driver (pymysql) already as the contract wants them: int,
Decimal, float, str, bytes, ``datetime.date``, naive ``datetime.datetime`` (DATETIME),
``datetime.timedelta`` (TIME). The few that do not are converted here, per column, and
only the columns that need it:

* ``tinyint(1)`` stored as PostgreSQL boolean -> bool (the reject rules keep out anything
  but 0 and 1);
* ``bit(1)`` -> bool, ``bit(n)`` -> int (the driver gives big-endian bytes);
* ``timestamp`` -> aware datetime in UTC (the source session runs with time_zone '+00:00',
  so the driver's naive value is UTC already);
* ``set(...)`` -> list[str] in the set's member order (the server sends ``'a,c'`` in that
  order; ``''`` is the empty set);
* ``json`` -> str (the JSON text as the source holds it; bytes are decoded).

A page is converted column-wise (transpose, one comprehension per converted column,
transpose back), so a stream with nothing to convert costs nothing and one with a few
such columns costs a C-level pass over the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from chariot.project.column_types import INTEGERS, UnknownSourceType, parse_source_type
from chariot.streams import Column, Stream

Converter = Callable[[Any], Any]


def column_converter(column: Column) -> Converter | None:
    """The function turning the driver's non-NULL value of ``column`` into the contract's;
    None when the driver's value is the contract's already."""
    if not column.source_type:
        return None  # a stream built by hand: values as the driver gives them
    try:
        source = parse_source_type(column.source_type)
    except UnknownSourceType:
        return None
    postgres = column.postgres.split("(")[0].strip()
    if source.name in INTEGERS:
        return bool if postgres == "boolean" else None
    if source.name == "bit":
        return bit_to_bool if (source.size or 1) == 1 else bit_to_int
    if source.name == "timestamp":
        return as_utc
    if source.name == "set":
        return set_converter(source.members)
    if source.name == "json":
        return json_text
    return None


def stream_converters(stream: Stream) -> tuple[tuple[int, Converter], ...]:
    """(position in a source row, converter) for every column that needs one."""
    found = ((i, column_converter(column)) for i, column in enumerate(stream.columns))
    return tuple((i, converter) for i, converter in found if converter is not None)


def convert_rows(
    rows: Sequence[tuple[Any, ...]], converters: Sequence[tuple[int, Converter]]
) -> list[tuple[Any, ...]]:
    """``rows`` with each converted column's non-NULL values passed through its converter."""
    if not converters or not rows:
        return list(rows)
    columns = list(zip(*rows, strict=True))
    for position, convert in converters:
        columns[position] = tuple(
            None if value is None else convert(value) for value in columns[position]
        )
    return list(zip(*columns, strict=True))


def convert_source_rows(stream: Stream, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Driver rows of ``stream`` (``stream.source_columns`` order) as the value contract has
    them: for anything that reads the source itself (the audit's repair) and must hand the
    sinks what a sync would."""
    return convert_rows(rows, stream_converters(stream))


# -- converters -----------------------------------------------------------------------------


def bit_to_bool(value: bytes | int) -> bool:
    return bit_to_int(value) != 0


def bit_to_int(value: bytes | int) -> int:
    if isinstance(value, int):
        return value
    return int.from_bytes(value, "big")


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def set_members(value: str | bytes) -> list[str]:
    """``'a,c'`` -> ``['a', 'c']`` (a member cannot contain a comma); ``''`` -> ``[]``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value.split(",") if value else []


def set_converter(members: Sequence[str]) -> Converter:
    """``set_members``, or, for a driver that hands over a Python set, its members in the
    set type's order."""
    order = {member: index for index, member in enumerate(members)}

    def convert(value: str | bytes | set[str]) -> list[str]:
        if isinstance(value, str | bytes):
            return set_members(value)
        return sorted(value, key=lambda member: (order.get(member, len(order)), member))

    return convert


def json_text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
