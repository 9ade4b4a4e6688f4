"""Row events parsed by a per-table plan, for the common column types.

``mysql-replication`` parses every value of every row through a chain of type tests and a
``read`` per field on its packet wrapper (a slice, a buffer check, a ``struct`` call each):
about 80 % of reading a log of small rows. This module gives its row events a faster
``_fetch_rows`` that reads the event's body once and walks it with a plan made once per
table definition (one reader per column, picked by type), yielding exactly what the
library yields: the same ``values`` dicts (same types, same ``None`` reasons in
``none_sources``), so ``chariot.cdc.decode`` stays the one decoder. tests/test_cdc_row_events.py
checks both parsers against each other on every column type the project contract names.

The plan covers integers, FLOAT/DOUBLE, DECIMAL, CHAR/VARCHAR/TEXT/BLOB/BINARY, DATE,
DATETIME(n), TIMESTAMP(n) and YEAR, with a full row image. Anything else (BIT, ENUM, SET,
TIME, JSON, geometry, a partial JSON update, a column missing from the image or without a
name) leaves the event to the library: never a guess.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

# A column reader: (event body, offset) -> (value, next offset, None's reason or "").
Reader = Callable[[bytes, int], tuple[Any, int, str]]

_NULL = "null"  # pymysqlreplication's NONE_SOURCE values
_OUT_OF_DATE = "out of date range"
_OUT_OF_DATETIME2 = "out of datetime2 range"
_EPOCH = dt.datetime(1970, 1, 1)
_DECIMAL_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes of a group of 0-9 leftover digits
_PLAN = "_chariot_row_plan"  # where a table keeps its plan (False: the library's parse)
_KNOWN_DECIMALS = 4096  # distinct values of one DECIMAL column kept parsed
_counts = {"planned": 0}  # events parsed by a plan (for tests and profiles)


def _fixed(form: str) -> Reader:
    unpack = struct.Struct(form).unpack_from
    size = struct.calcsize(form)

    def read(data: bytes, at: int) -> tuple[Any, int, str]:
        return unpack(data, at)[0], at + size, ""

    _FIXED_FORMS[read] = form
    return read


# A fixed-width reader -> its struct format: a row of such columns only, with no NULL,
# is read by one ``unpack_from`` (``RowPlan.image``).
_FIXED_FORMS: dict[Reader, str] = {}


def _int24(unsigned: bool) -> Reader:
    def read(data: bytes, at: int) -> tuple[Any, int, str]:
        return int.from_bytes(data[at : at + 3], "little", signed=not unsigned), at + 3, ""

    return read


def _string(length_size: int, encoding: str | None, errors: str) -> Reader:
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            encoding = ""  # the library keeps such a value as bytes (e.g. charset binary)

    def read(data: bytes, at: int) -> tuple[Any, int, str]:
        length = int.from_bytes(data[at : at + length_size], "little")
        start = at + length_size
        raw = data[start : start + length]
        if encoding is None:
            return raw.decode(errors=errors), start + length, ""
        if not encoding:
            # bytes.decode of nothing skips the codec lookup: the library gets '' then.
            return (raw if raw else ""), start + length, ""
        return raw.decode(encoding, errors), start + length, ""

    return read


def _decimal(precision: int, decimals: int) -> Reader:
    whole_groups, whole_left = divmod(precision - decimals, 9)
    fraction_groups, fraction_left = divmod(decimals, 9)
    head = _DECIMAL_BYTES[whole_left]
    tail = _DECIMAL_BYTES[fraction_left]
    size = head + 4 * (whole_groups + fraction_groups) + tail
    # Values repeat (ratings hold ten): each distinct encoding is parsed once (a Decimal
    # is immutable, so sharing one is safe).
    known: dict[bytes, Decimal] = {}

    def read(data: bytes, at: int) -> tuple[Any, int, str]:
        encoded = data[at : at + size]
        value = known.get(encoded)
        if value is None:
            value = parse(encoded)
            if len(known) < _KNOWN_DECIMALS:
                known[encoded] = value
        return value, at + size, ""

    def parse(encoded: bytes) -> Decimal:
        raw = bytearray(encoded)
        positive = raw[0] & 0x80
        raw[0] ^= 0x80
        mask = 0 if positive else -1
        text = "" if positive else "-"
        pos = 0
        if head:
            text += str(int.from_bytes(raw[:head], "big", signed=True) ^ mask)
            pos = head
        for _ in range(whole_groups):
            text += f"{int.from_bytes(raw[pos : pos + 4], 'big', signed=True) ^ mask:09d}"
            pos += 4
        text += "."
        for _ in range(fraction_groups):
            text += f"{int.from_bytes(raw[pos : pos + 4], 'big', signed=True) ^ mask:09d}"
            pos += 4
        if tail:
            value = int.from_bytes(raw[pos : pos + tail], "big", signed=True) ^ mask
            text += f"{value:0{fraction_left}d}"
        return Decimal(text)

    return read


def _fraction_reader(fsp: int) -> tuple[int, Callable[[bytes], int]]:
    """Bytes and microseconds of a DATETIME2/TIMESTAMP2 fraction of ``fsp`` digits."""
    size = (fsp + 1) // 2

    def micros(raw: bytes) -> int:
        if not size:
            return 0
        value = int.from_bytes(raw, "big", signed=True)
        if fsp % 2:
            value = int(value / 10)
        return value * 10 ** (6 - fsp)

    return size, micros


def _datetime2(fsp: int) -> Reader:
    size, micros = _fraction_reader(fsp)

    def read(data: bytes, at: int) -> tuple[Any, int, str]:
        packed = int.from_bytes(data[at : at + 5], "big")
        end = at + 5 + size
        year_month = (packed >> 22) & 0x1FFFF
        try:
            value = dt.datetime(
                year_month // 13,
                year_month % 13,
                (packed >> 17) & 0x1F,
                (packed >> 12) & 0x1F,
                (packed >> 6) & 0x3F,
                packed & 0x3F,
            )
        except ValueError:
            return None, end, _OUT_OF_DATETIME2
        fraction = micros(data[at + 5 : end])
        return (value.replace(microsecond=fraction) if fraction > 0 else value), end, ""

    return read


def _timestamp2(fsp: int) -> Reader:
    size, micros = _fraction_reader(fsp)

    def read(data: bytes, at: int) -> tuple[Any, int, str]:
        seconds = int.from_bytes(data[at : at + 4], "big", signed=True)
        value = _EPOCH + dt.timedelta(seconds=seconds)  # the library's utcfromtimestamp
        end = at + 4 + size
        fraction = micros(data[at + 4 : end])
        return (value.replace(microsecond=fraction) if fraction > 0 else value), end, ""

    return read


def _date(data: bytes, at: int) -> tuple[Any, int, str]:
    packed = int.from_bytes(data[at : at + 3], "little")
    year, month, day = packed >> 9, (packed >> 5) & 0x0F, packed & 0x1F
    if not (year and month and day):
        return None, at + 3, _OUT_OF_DATE
    return dt.date(year, month, day), at + 3, ""


def _year(data: bytes, at: int) -> tuple[Any, int, str]:
    return data[at] + 1900, at + 1, ""


_INTEGERS = {
    FIELD_TYPE.TINY: ("<b", "<B"),
    FIELD_TYPE.SHORT: ("<h", "<H"),
    FIELD_TYPE.LONG: ("<i", "<I"),
    FIELD_TYPE.LONGLONG: ("<q", "<Q"),
}


def column_reader(column: Any, errors: str) -> Reader | None:
    """The reader of one of the library's column definitions; None: not covered here."""
    kind = column.type
    if kind in _INTEGERS:
        return _fixed(_INTEGERS[kind][1 if column.unsigned else 0])
    if kind == FIELD_TYPE.INT24:
        return _int24(bool(column.unsigned))
    if kind == FIELD_TYPE.FLOAT:
        return _fixed("<f")
    if kind == FIELD_TYPE.DOUBLE:
        return _fixed("<d")
    if kind == FIELD_TYPE.NEWDECIMAL:
        return _decimal(column.precision, column.decimals)
    if kind in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
        encoding = _encoding(column)
        return _string(2 if column.max_length > 255 else 1, encoding, errors)
    if kind == FIELD_TYPE.BLOB and column.length_size in (1, 2, 3, 4):
        return _string(column.length_size, _encoding(column), errors)
    if kind == FIELD_TYPE.DATE:
        return _date
    if kind == FIELD_TYPE.DATETIME2:
        return _datetime2(column.fsp)
    if kind == FIELD_TYPE.TIMESTAMP2:
        return _timestamp2(column.fsp)
    if kind == FIELD_TYPE.YEAR:
        return _year
    return None


def _encoding(column: Any) -> str | None:
    from pymysqlreplication.row_event import RowsEvent

    name = column.character_set_name
    return None if name is None else str(RowsEvent.charset_to_encoding(name))


class RowPlan:
    """The column names and readers of one table definition."""

    def __init__(self, names: list[str], readers: list[Reader]) -> None:
        self.names = names
        self.readers = readers
        self.bitmap_size = (len(names) + 7) // 8
        self.present = bytes(self._full_bitmap(len(names)))
        # The bits of real columns (a bitmap's padding bits may be set).
        self.column_bits = int.from_bytes(self.present, "little")
        forms = [_FIXED_FORMS.get(read) for read in readers]
        self.whole: struct.Struct | None = None
        if forms and all(forms):
            self.whole = struct.Struct("<" + "".join(form[1:] for form in forms if form))

    @staticmethod
    def _full_bitmap(count: int) -> bytearray:
        bitmap = bytearray((count + 7) // 8)
        for index in range(count):
            bitmap[index // 8] |= 1 << (index % 8)
        return bitmap

    def image(self, data: bytes, at: int) -> tuple[dict[str, Any], dict[str, str], int]:
        """One row image at ``at``: its values, the reasons of its Nones, the next offset."""
        nulls = data[at : at + self.bitmap_size]
        at += self.bitmap_size
        whole = self.whole
        if whole is not None and not int.from_bytes(nulls, "little") & self.column_bits:
            return (
                dict(zip(self.names, whole.unpack_from(data, at), strict=True)),
                {},
                at + whole.size,
            )
        values: dict[str, Any] = {}
        reasons: dict[str, str] = {}
        for index, (name, read) in enumerate(zip(self.names, self.readers, strict=True)):
            if nulls[index >> 3] & (1 << (index & 7)):
                values[name] = None
                reasons[name] = _NULL
                continue
            value, at, reason = read(data, at)
            values[name] = value
            if value is None:
                reasons[name] = reason or _NULL
        return values, reasons, at


def row_plan(event: Any) -> RowPlan | None:
    """The table's plan (made once per table definition), or None for the library's parse."""
    table = event.table_map.get(event.table_id)
    if table is None:
        return None
    plan = table.__dict__.get(_PLAN)
    if plan is None:
        plan = _make_plan(table.columns, "ignore" if event._ignore_decode_errors else "strict")
        table.__dict__[_PLAN] = plan if plan is not None else False
    return plan or None


def _make_plan(columns: list[Any], errors: str) -> RowPlan | None:
    names: list[str] = []
    readers: list[Reader] = []
    for column in columns:
        reader = column_reader(column, errors)
        if reader is None or not column.name:
            return None
        names.append(str(column.name))
        readers.append(reader)
    return RowPlan(names, readers)


def _planned_rows(event: Any, images: int) -> list[dict[str, Any]] | None:
    """The event's rows by its table's plan; None when the library must parse them."""
    if not event.complete or event.event_type == BINLOG.PARTIAL_UPDATE_ROWS_EVENT:
        return None
    plan = row_plan(event)
    if plan is None or event.number_of_columns != len(plan.names):
        return None
    bitmaps = [event.columns_present_bitmap]
    if images == 2:
        bitmaps.append(event.columns_present_bitmap2)
    if any(bytes(bitmap) != plan.present for bitmap in bitmaps):
        return None  # not a full row image
    packet = event.packet
    if getattr(packet, "_BinLogPacketWrapper__data_buffer", b""):
        return None  # bytes pushed back into the wrapper: leave them to the library
    data = bytes(packet.read(event.event_size - packet.read_bytes))
    rows = []
    at = 0
    end = len(data)
    while at < end:
        if images == 1:
            values, reasons, at = plan.image(data, at)
            rows.append({"values": values, "none_sources": reasons})
        else:
            before, before_reasons, at = plan.image(data, at)
            after, after_reasons, at = plan.image(data, at)
            rows.append(
                {
                    "before_values": before,
                    "before_none_sources": before_reasons,
                    "after_values": after,
                    "after_none_sources": after_reasons,
                }
            )
    _counts["planned"] += 1
    return rows


def planned_events() -> int:
    """Row events parsed by a plan since the process started."""
    return _counts["planned"]


class _PlannedRows:
    """Rows parsed by the table's plan, or by the library when the table has none."""

    images = 1  # row images per row: an update carries two (before, after)

    def _fetch_rows(self) -> None:
        rows = _planned_rows(self, self.images)
        if rows is None:
            super()._fetch_rows()  # type: ignore[misc]
        else:
            self._RowsEvent__rows = rows


class PlannedWriteRowsEvent(_PlannedRows, WriteRowsEvent):  # type: ignore[misc]
    pass


class PlannedDeleteRowsEvent(_PlannedRows, DeleteRowsEvent):  # type: ignore[misc]
    pass


class PlannedUpdateRowsEvent(_PlannedRows, UpdateRowsEvent):  # type: ignore[misc]
    images = 2


PLANNED_EVENTS = (PlannedWriteRowsEvent, PlannedUpdateRowsEvent, PlannedDeleteRowsEvent)
_REPLACED = {
    WriteRowsEvent: PlannedWriteRowsEvent,
    UpdateRowsEvent: PlannedUpdateRowsEvent,
    DeleteRowsEvent: PlannedDeleteRowsEvent,
}
_installed = False


def install() -> bool:
    """Have the library build row events with the planned classes (idempotent); False
    when its event table is not what this module expects (then nothing changes)."""
    global _installed
    if _installed:
        return True
    from pymysqlreplication.packet import BinLogPacketWrapper

    events = BinLogPacketWrapper._BinLogPacketWrapper__event_map
    codes = (
        BINLOG.WRITE_ROWS_EVENT_V1,
        BINLOG.WRITE_ROWS_EVENT_V2,
        BINLOG.UPDATE_ROWS_EVENT_V1,
        BINLOG.UPDATE_ROWS_EVENT_V2,
        BINLOG.DELETE_ROWS_EVENT_V1,
        BINLOG.DELETE_ROWS_EVENT_V2,
    )
    if any(events.get(code) not in (*_REPLACED, *PLANNED_EVENTS) for code in codes):
        return False
    for code in codes:
        events[code] = _REPLACED.get(events[code], events[code])
    _installed = True
    return True
