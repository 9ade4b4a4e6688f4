"""Table-map events parsed once per table definition, not once per row event.

The server writes a table-map event before every row event: with one statement per row,
that is one per changed row. ``mysql-replication`` parses each one in full (columns, their
optional metadata, charsets, names): about 70 % of reading such a log. The parse depends
only on the event's bytes after its common header (table id, schema, table, column types
and metadata, names) and on the reader's settings, so identical bytes give an identical
table: this subclass keeps the parsed result per (settings, bytes) and reuses it.

Keying on the whole body, not on the table id alone, keeps it exact: an ALTER TABLE (new
definition), a table id reused after a server restart, or another server's table all
give different bytes, hence a fresh parse. Only tables whose column names came with the
event (``binlog_row_metadata=FULL``, which change capture requires) are kept: without
them the library later patches names into the table it holds, which must not be shared.

The library has no setting for its event classes; ``install`` points its table-map entry
at this subclass (once per process), and a reader must list ``CachedTableMapEvent`` in
``only_events`` so that the library lets it through (``reader._open_stream`` does).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from pymysqlreplication.row_event import TableMapEvent
from pymysqlreplication.table import Table

# An event's body starts after the OK byte and the 19-byte common header (which holds the
# timestamp and position, different for every copy of the same table map).
_BODY_START = 20
_CACHE_SIZE = 1024

_lock = threading.Lock()
_parsed: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_counts = {"hits": 0, "parses": 0}

# What the library's own __init__ leaves on an event (with the name-mangled settings).
_KEPT = (
    "table_id",
    "flags",
    "schema_length",
    "schema",
    "table_length",
    "table",
    "column_count",
    "columns",
    "null_bitmask",
    "table_obj",
    "optional_metadata",
    "_processed",
    "_TableMapEvent__only_tables",
    "_TableMapEvent__ignored_tables",
    "_TableMapEvent__only_schemas",
    "_TableMapEvent__ignored_schemas",
    "_TableMapEvent__freeze_schema",
    "_TableMapEvent__optional_meta_data",
    "_TableMapEvent__enable_logging",
    "_TableMapEvent__use_column_name_cache",
)


class CachedTableMapEvent(TableMapEvent):  # type: ignore[misc]
    """A ``TableMapEvent`` that parses each distinct table definition once."""

    def __init__(
        self, from_packet: Any, event_size: int, table_map: dict[int, Any], ctl: Any, **kwargs: Any
    ) -> None:
        body = bytes(from_packet.packet.get_all_data()[_BODY_START : _BODY_START + event_size])
        key = (body, ctl._get_dbms(), *map(_frozen, map(kwargs.get, _SETTINGS)))
        with _lock:
            known = _parsed.get(key)
            if known is not None:
                _parsed.move_to_end(key)
                _counts["hits"] += 1
        if known is None:
            super().__init__(from_packet, event_size, table_map, ctl, **kwargs)
            _remember(key, self)
            return
        # The base event's own bookkeeping (header fields, checksum check), then the table.
        super(TableMapEvent, self).__init__(from_packet, event_size, table_map, ctl, **kwargs)
        self.__dict__.update(known)
        if self._processed:
            table_map[self.table_id] = self.table_obj


_SETTINGS = (
    "only_tables",
    "ignored_tables",
    "only_schemas",
    "ignored_schemas",
    "freeze_schema",
    "optional_meta_data",
    "mysql_version",
)


def _frozen(value: Any) -> Any:
    if isinstance(value, list | set | frozenset):
        return tuple(sorted(value))
    return value


def _remember(key: tuple[Any, ...], event: CachedTableMapEvent) -> None:
    processed = bool(getattr(event, "_processed", True))
    if processed and not getattr(event.table_obj, "column_name_flag", False):
        return  # names fetched or patched in later: the table is not shareable
    kept = {name: event.__dict__[name] for name in _KEPT if name in event.__dict__}
    kept["_processed"] = processed
    if processed:
        kept["table_obj"] = _SharedTable(event.table_obj)
    with _lock:
        _counts["parses"] += 1
        _parsed[key] = kept
        while len(_parsed) > _CACHE_SIZE:
            _parsed.popitem(last=False)


class _SharedTable(Table):  # type: ignore[misc]
    """A parsed table shared by the events of one definition: nothing changes it, so its
    ``data`` (which every row event reads, and the library rebuilds per call) is built once."""

    def __init__(self, table: Table) -> None:
        self.__dict__.update(table.__dict__)
        self._shared_data = table.data

    @property
    def data(self) -> dict[str, Any]:
        return self._shared_data  # type: ignore[no-any-return]


def cache_counts() -> dict[str, int]:
    """Table maps reused and parsed since the process started (for tests and profiles)."""
    with _lock:
        return dict(_counts)


_installed = False


def install() -> None:
    """Have the library build table-map events with ``CachedTableMapEvent`` (idempotent).

    Its packet wrapper picks event classes from a private table, and only builds those the
    reader allows: every reader of this process must therefore list the subclass in its
    ``only_events`` (Chariot's one reader does)."""
    global _installed
    if _installed:
        return
    from pymysqlreplication.constants import BINLOG
    from pymysqlreplication.packet import BinLogPacketWrapper

    events = BinLogPacketWrapper._BinLogPacketWrapper__event_map
    if events.get(BINLOG.TABLE_MAP_EVENT) not in (TableMapEvent, CachedTableMapEvent):
        return  # a library version that builds them differently: leave it as it is
    events[BINLOG.TABLE_MAP_EVENT] = CachedTableMapEvent
    _installed = True
