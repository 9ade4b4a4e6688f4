"""What a table is: its source name, key, columns, and the tables it references.

Streams are data, built from the project file (``chariot.project.streams``). The conductor
iterates over them; each sink maps a stream to its own storage from the stream alone
(``outputs`` for PostgreSQL, ``project.graph`` for Neo4j); the audit reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chariot.project.model import Project
    from chariot.project.outputs import OutputColumn


@dataclass(frozen=True)
class Column:
    source: str  # name in the source database
    name: str  # name in the sinks' staging (its plain output's name, else the source's)
    # Coarse kind, from the PostgreSQL type: "int", "bigint", "text", "decimal", or the
    # PostgreSQL base type itself for the others ("boolean", "timestamptz", "text[]", ...).
    kind: str
    nullable: bool = False  # False: a NULL in the source makes the row un-loadable (a reject)
    # Value rules (validation.py turns them into SQL, evaluated by the source database):
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    step: Decimal | None = None  # the value must be a multiple of this (ratings: 0.5)
    source_type: str = ""  # as the project file writes it: "datetime", "set('a','b')", ...
    postgres: str = ""  # the column's PostgreSQL type as read ("" -> from ``kind``)
    neo4j: str = ""  # its Neo4j type ("integer", "local datetime", "list<string>", ...)


@dataclass(frozen=True)
class Reference:
    """Each row points at one row of another stream (a foreign key no sink enforces: a row
    whose referenced row is absent is kept, and the audit reports it as an orphan)."""

    table: str  # the referenced stream's name
    columns: tuple[str, ...]  # this stream's source columns, in the referenced key's order
    # The source's foreign-key actions ("cascade", "set null", "set default", "restrict",
    # "no action"): change capture applies them itself, as the binary log lacks their rows.
    on_delete: str = "no action"
    on_update: str = "no action"


@dataclass(frozen=True)
class Stream:
    name: str
    source_table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # source column names, in key order
    depends_on: tuple[str, ...] = field(default=())  # synced after these (besides references)
    references: tuple[Reference, ...] = field(default=())
    # The project's table definition, as text: two streams are equal only when their
    # definitions are (the layouts cached per stream depend on every detail of it).
    signature: str = ""
    # The columns the sinks store, after the table's transforms, in order. Empty for a
    # stream built by hand: then each column as read, under its staging name.
    outputs: tuple[OutputColumn, ...] = field(default=(), compare=False, repr=False)
    # The whole project, for what spans tables (the graph model, the aggregations).
    project: Project | None = field(default=None, compare=False, repr=False)

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Streams to sync first: ``depends_on`` and every referenced stream."""
        return tuple(dict.fromkeys((*self.depends_on, *(r.table for r in self.references))))

    @property
    def source_columns(self) -> tuple[str, ...]:
        return tuple(column.source for column in self.columns)

    @property
    def key_columns(self) -> tuple[Column, ...]:
        by_source = {column.source: column for column in self.columns}
        return tuple(by_source[name] for name in self.key)

    @property
    def key_positions(self) -> tuple[int, ...]:
        """Where the key columns sit in a source row (``source_columns`` order)."""
        return tuple(self.source_columns.index(name) for name in self.key)

    def column(self, source_name: str) -> Column:
        for column in self.columns:
            if column.source == source_name:
                return column
        raise KeyError(source_name)
