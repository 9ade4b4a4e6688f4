"""The project's tables as today's ``chariot.streams.Stream`` objects.

The bridge that lets sync, audit and status take their tables from a project file instead
of the MovieLens constants. Streams know four staging kinds only, so a column whose
PostgreSQL type is not one of them (a timestamp, a boolean, ...) raises ``ConfigError``
until the sinks learn the other types.
"""

from __future__ import annotations

from chariot.errors import ConfigError
from chariot.project.model import Project, Table
from chariot.project.outputs import table_outputs
from chariot.streams import Column, Reference, Stream

# The staging kind of a plain column, by its PostgreSQL type (numeric(p,s) included).
STREAM_KINDS = {"integer": "int", "bigint": "bigint", "text": "text", "numeric": "decimal"}


def project_streams(project: Project) -> tuple[Stream, ...]:
    return tuple(table_stream(project, name) for name in project.tables)


def table_stream(project: Project, name: str) -> Stream:
    table = project.tables[name]
    return Stream(
        name=name,
        source_table=project.source_table(name),
        columns=tuple(_column(name, table, column) for column in table.columns),
        key=tuple(table.key),
        depends_on=tuple(table.depends_on),
        references=tuple(Reference(r.table, tuple(r.columns)) for r in table.references),
    )


def _column(table_name: str, table: Table, source: str) -> Column:
    column = table.columns[source]
    postgres = column.postgres or ""
    kind = STREAM_KINDS.get(postgres.split("(")[0])
    if kind is None:
        raise ConfigError(
            f"tables.{table_name}.columns.{source}: PostgreSQL type {postgres} is not "
            "supported by the sinks yet (integer, bigint, text and numeric are)"
        )
    return Column(
        source=source,
        name=_staging_name(table, source),
        kind=kind,
        nullable=column.nullable,
        min_value=column.min,
        max_value=column.max,
        step=column.step,
    )


def _staging_name(table: Table, source: str) -> str:
    """The name a source column has in the sinks: its plain output's, else its own."""
    for output in table_outputs(table):
        if output.origin == source and output.is_plain:
            return output.name
    return source
