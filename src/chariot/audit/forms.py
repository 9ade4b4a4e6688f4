"""How each table is compared with each sink, derived from its stream alone.

PostgreSQL: one field per output column (``stream.outputs``), its kind from the column's
PostgreSQL type. On the source side the field is the origin column as the value contract
reads it, with the column's transforms applied: in SQL where MySQL has the same rule (a
plain column, a ``split`` compared as its joined text), else in Python from the source row
(``python_function``: a regular-expression capture, a cast).

Neo4j: see ``chariot.audit.graph_form``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chariot.audit.canonical import NUMBER_CHARS, Canonical, Field, SourceValue
from chariot.audit.values import Kind
from chariot.project.column_types import parse_source_type
from chariot.project.model import Python, Split
from chariot.project.outputs import OutputColumn, key_output
from chariot.streams import Stream

SINKS = ("postgres", "neo4j")

# PostgreSQL base type -> kind; anything else compares as text.
POSTGRES_KINDS: dict[str, Kind] = {
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "numeric": "decimal",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
    "date": "date",
    "timestamp": "datetime",
    "timestamptz": "timestamptz",
    "interval": "duration",
    "bytea": "bytes",
    "jsonb": "json",
    "json": "json",
    "text": "text",
}
# Read as text from PostgreSQL (their Python types are not the source's).
AS_TEXT = ("jsonb", "json", "uuid")


def canonical_for(stream: Stream, sink: str) -> Canonical | None:
    """``sink`` is "postgres" or "neo4j"; None when the stream has no place in that sink
    (a table the graph model does not use)."""
    if sink == "neo4j":
        from chariot.audit.graph_form import graph_canonical

        return graph_canonical(stream)
    return postgres_canonical(stream)


def outputs_of(stream: Stream) -> tuple[OutputColumn, ...]:
    """The stream's output columns; a stream built by hand stores its columns as read."""
    if stream.outputs:
        return stream.outputs
    return tuple(
        OutputColumn(c.name, c.postgres or _kind_type(c.kind), c.neo4j, c.nullable, c.source)
        for c in stream.columns
    )


def _kind_type(kind: str) -> str:
    return {"int": "integer", "bigint": "bigint", "decimal": "numeric"}.get(kind, kind)


def key_names(stream: Stream) -> tuple[str, ...]:
    """The output columns holding the key, in key order."""
    outputs = outputs_of(stream)
    if not stream.outputs:
        return tuple(stream.column(k).name for k in stream.key)
    return tuple(key_output(outputs, k) or k for k in stream.key)


def postgres_canonical(stream: Stream) -> Canonical:
    fields = tuple(postgres_field(stream, column) for column in outputs_of(stream))
    return Canonical(stream=stream, fields=fields, key=key_names(stream))


def postgres_kind(column: OutputColumn) -> Kind:
    if column.is_list:
        return "joined"
    base = column.postgres.split("(")[0].strip().lower()
    return POSTGRES_KINDS.get(base, "text")


def postgres_field(stream: Stream, column: OutputColumn) -> Field:
    kind = postgres_kind(column)
    quoted = quote_pg(column.name)
    base = column.postgres.split("(")[0].strip().lower()
    postgres = f"{quoted}::text" if base in AS_TEXT else quoted
    delimiter = list_delimiter(column)
    if kind == "joined":
        postgres = f"array_to_string({quoted}, {pg_literal(delimiter)})"
    return Field(
        name=column.name,
        kind=kind,
        mysql=mysql_expression(stream, column, kind),
        postgres=postgres,
        cypher="",
        source=source_value(stream, column),
        scale=decimal_scale(stream, column),
        delimiter=delimiter,
        max_chars=max_chars(stream, column, kind),
    )


def list_delimiter(column: OutputColumn) -> str:
    """A split's delimiter; a SET's members are joined by commas (which they cannot hold)."""
    splits = [step for step in column.steps if isinstance(step, Split)]
    return splits[-1].delimiter if splits else ","


def max_chars(stream: Stream, column: OutputColumn, kind: Kind) -> int | None:
    """The most characters of the field's canonical text, from the source type (None: no
    short bound is known): whether segments can have ordered checksums."""
    if any(isinstance(step, Python) for step in column.steps):
        return None  # a function may return anything
    if kind not in ("text", "joined"):
        return NUMBER_CHARS
    try:
        source = parse_source_type(stream.column(column.origin).source_type)
    except (KeyError, ValueError):
        return None
    if source.name in ("enum", "set"):
        members = source.members
        return NUMBER_CHARS + sum(len(m) + 1 for m in members)
    if source.name in ("char", "varchar") and source.size:
        return NUMBER_CHARS + source.size  # the length prefix, then the text
    return None


def decimal_scale(stream: Stream, column: OutputColumn) -> int:
    try:
        parsed = parse_source_type(stream.column(column.origin).source_type)
    except (KeyError, ValueError):
        return 0
    if parsed.name != "decimal" or column.steps:
        return 0
    return parsed.scale or 0


def source_value(stream: Stream, column: OutputColumn) -> SourceValue:
    """The output value from a source row of contract values (``python_function``)."""
    from chariot.project.expressions import python_function

    position = stream.source_columns.index(column.origin)
    function = python_function(column)
    base = column.postgres.split("(")[0].strip().lower()

    def value(row: Sequence[Any]) -> Any:
        found = function(row[position])
        if base == "uuid" and found is not None:
            return str(found)
        return found

    return value


def mysql_expression(stream: Stream, column: OutputColumn, kind: Kind) -> str | None:
    """The field in MySQL SQL, where MySQL computes exactly what Python does; else None."""
    if kind not in ("int", "decimal", "text", "joined"):
        return None
    origin = quote_my(column.origin)
    try:
        source = parse_source_type(stream.column(column.origin).source_type)
    except (KeyError, ValueError):
        source = None
    if source is not None and (source.name == "bit" or source.is_tinyint1 and kind != "int"):
        return None
    if column.is_plain:
        if kind == "joined" and (source is None or source.name != "set"):
            return None
        return origin
    if len(column.steps) == 1 and isinstance(column.steps[0], Split) and kind == "joined":
        return _mysql_split_joined(origin, column.steps[0])
    return None


def _mysql_split_joined(origin: str, split: Split) -> str | None:
    """The split list joined again is the source text, except for the empty cases."""
    markers = ["", *split.empty]
    if any(_unsafe_mysql(marker) for marker in markers):
        return None
    empty = " OR ".join(f"{origin} = BINARY '{marker}'" for marker in markers)
    return f"CASE WHEN {origin} IS NULL OR {empty} THEN '' ELSE {origin} END"


def _unsafe_mysql(text: str) -> bool:
    # No quoting rule is the same under every sql_mode, and pymysql formats % itself.
    return any(c in text for c in "'\\%") or not text.isprintable()


def quote_my(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
