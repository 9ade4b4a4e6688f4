"""The project's tables as ``chariot.streams.Stream`` objects: what sync, audit and status
iterate over. A stream carries its source columns (as read, with their types), its output
columns (after transforms) and the project itself, so each sink derives its mapping from
the stream alone.
"""

from __future__ import annotations

from chariot.project.model import Project, Table
from chariot.project.outputs import table_outputs
from chariot.streams import Column, Reference, Stream

# The coarse kind of a column, by its PostgreSQL base type; any other type is its own kind.
STREAM_KINDS = {
    "smallint": "int",
    "integer": "int",
    "bigint": "bigint",
    "text": "text",
    "numeric": "decimal",
}


def default_streams() -> tuple[Stream, ...]:
    """The streams of the project file found as ``load_project`` finds it (``--project``,
    ``$CHARIOT_PROJECT``, ``./chariot.toml``): what a library call uses when given none."""
    from chariot.project.loading import load_project

    return project_streams(load_project())


def project_streams(project: Project) -> tuple[Stream, ...]:
    return tuple(table_stream(project, name) for name in project.tables)


def table_stream(project: Project, name: str) -> Stream:
    table = project.tables[name]
    return Stream(
        name=name,
        source_table=project.source_table(name),
        columns=tuple(_column(table, source) for source in table.columns),
        key=tuple(table.key),
        depends_on=tuple(table.depends_on),
        references=tuple(
            Reference(r.table, tuple(r.columns), on_delete=r.on_delete, on_update=r.on_update)
            for r in table.references
        ),
        signature=table.model_dump_json(),
        outputs=table_outputs(table),
        project=project,
    )


def column_kind(postgres: str) -> str:
    """``numeric(2,1)`` -> ``decimal``; ``timestamptz`` -> ``timestamptz``."""
    base = postgres.split("(")[0].strip()
    return STREAM_KINDS.get(base, base)


def _column(table: Table, source: str) -> Column:
    column = table.columns[source]
    postgres = column.postgres or ""
    return Column(
        source=source,
        name=_staging_name(table, source),
        kind=column_kind(postgres),
        nullable=column.nullable,
        min_value=column.min,
        max_value=column.max,
        step=column.step,
        source_type=column.type,
        postgres=postgres,
        neo4j=column.neo4j or "",
    )


def _staging_name(table: Table, source: str) -> str:
    """The name a source column has in the sinks: its plain output's, else its own."""
    for output in table_outputs(table):
        if output.origin == source and output.is_plain:
            return output.name
    return source
