"""How a stream is laid out in PostgreSQL, and every statement the sink runs against it.

The layout is derived from the stream alone. The staging table has one column per source
column, typed with its PostgreSQL type (``Column.postgres``): COPY hands every value of the
value contract to the server as text, which parses it by that type (bool, date, timestamp,
timestamptz, interval, text[], jsonb, bytea, numeric, uuid). The table has one column per
output column (``Stream.outputs``: the source columns after the project's transforms), of
its ``postgres`` type, NOT NULL unless nullable, computed from the staging table with the
transforms' SQL (``chariot.project.expressions``). An output computed by a Python transform
has no SQL: its value is computed in Python and staged in a column of its own
(``staged_rows``), which the table's column copies. A stream built by hand, without outputs,
stores its columns as they are. Text key columns use the "C" collation: byte equality,
like the source's binary collation, never a locale's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from chariot.project.expressions import postgres_expression, python_function
from chariot.project.outputs import OutputColumn, key_output
from chariot.sinks.postgres_lease import LOADS, LOADS_DDL
from chariot.streams import Column, Stream

if TYPE_CHECKING:
    from psycopg import sql

CHECKPOINTS = "_chariot_checkpoints"
REJECTS = "_chariot_rejects"
LOG_POSITIONS = "_chariot_log_positions"

# The PostgreSQL type of a column that names none (a stream built by hand), by its kind.
KIND_TYPES = {"int": "integer", "bigint": "bigint", "text": "text", "decimal": "numeric"}
# The staging column of output number N computed in Python (short: names stay < 64 bytes).
PYTHON_STAGED = "_chariot_python_{}"


@dataclass(frozen=True)
class PgColumn:
    name: str
    type: str
    not_null: bool
    expression: str  # SQL over the staging table's columns


def postgres_type(column: Column) -> str:
    return column.postgres or KIND_TYPES.get(column.kind, column.kind)


def stream_outputs(stream: Stream) -> tuple[OutputColumn, ...]:
    """What the table stores: the project's output columns, or (a stream built by hand)
    each source column as it is, under its staging name."""
    if stream.outputs:
        return stream.outputs
    return tuple(
        OutputColumn(
            name=column.name,
            postgres=postgres_type(column),
            neo4j=column.neo4j,
            nullable=column.nullable,
            origin=column.source,
        )
        for column in stream.columns
    )


# Keys are stored as JSON *text*, not jsonb: jsonb cannot hold U+0000, and a key with a NUL
# in it (a rejected row's) must still be recorded. The text is exactly jsonb's own rendering
# (``key_json``), so ``jsonb_build_array(...)::text`` compares equal to it.
CONTROL_TABLES = (
    "CREATE TABLE IF NOT EXISTS {schema}." + CHECKPOINTS + " ("
    " table_name text PRIMARY KEY, high_water_mark text NOT NULL,"
    " rows_written bigint, updated_at timestamptz)",
    "CREATE TABLE IF NOT EXISTS {schema}." + REJECTS + " ("
    " table_name text, row_key text, reason text, first_seen timestamptz,"
    " last_seen timestamptz, PRIMARY KEY (table_name, row_key))",
    LOADS_DDL,
    # Change capture: where each table stands in the source's binary log (written in the
    # same transaction as the changes it covers) and the last source commit it covers.
    "CREATE TABLE IF NOT EXISTS {schema}." + LOG_POSITIONS + " ("
    " table_name text PRIMARY KEY, log_position text NOT NULL, committed_at timestamptz,"
    " updated_at timestamptz, copied boolean NOT NULL DEFAULT false)",
)
# Schemas written by 0.1.0 keep their keys in jsonb: convert once, in place.
JSONB_KEY_COLUMNS = ((CHECKPOINTS, "high_water_mark"), (REJECTS, "row_key"))


@dataclass(frozen=True)
class PgTable:
    stream: Stream
    schema: str

    @property
    def name(self) -> str:
        return self.stream.name

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The table's key columns: the outputs carrying the source key (renamed, cast)."""
        outputs = stream_outputs(self.stream)
        return tuple(
            key_output(outputs, key) or self.stream.column(key).name for key in self.stream.key
        )

    @cached_property
    def in_python(self) -> tuple[tuple[str, OutputColumn], ...]:
        """(staging column, output) for each output computed in Python, in output order."""
        return tuple(
            (PYTHON_STAGED.format(position), output)
            for position, output in enumerate(stream_outputs(self.stream))
            if output.in_python
        )

    @property
    def staging_columns(self) -> tuple[str, ...]:
        return (
            *(column.name for column in self.stream.columns),
            *(staged for staged, _ in self.in_python),
        )

    @cached_property
    def columns(self) -> tuple[PgColumn, ...]:
        staging = {column.source: _quote(column.name) for column in self.stream.columns}
        staged = {output.name: _quote(name) for name, output in self.in_python}
        keys = set(self.keys)
        columns = []
        for output in stream_outputs(self.stream):
            type_ = output.postgres
            if type_ == "text" and output.name in keys:
                type_ += ' COLLATE "C"'
            if output.name in staged:
                expression = staged[output.name]
            else:
                expression = postgres_expression(output, staging[output.origin])
            columns.append(PgColumn(output.name, type_, not output.nullable, expression))
        return tuple(columns)

    @cached_property
    def _python_inputs(self) -> tuple[tuple[int, Any], ...]:
        """(position of the origin in a row, function) per output computed in Python."""
        sources = list(self.stream.source_columns)
        return tuple(
            (sources.index(output.origin), python_function(output)) for _, output in self.in_python
        )

    def staged_rows(self, rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
        """``rows`` as COPY stages them: each followed by its values computed in Python."""
        if not self._python_inputs:
            return rows
        computed = [
            [function(row[position]) for row in rows] for position, function in self._python_inputs
        ]
        return [(*row, *values) for row, *values in zip(rows, *computed, strict=True)]

    # -- DDL -----------------------------------------------------------------------------

    def create_statements(self, *, controls: bool = True) -> list[sql.Composed]:
        """The control tables (unless ``controls`` is False: known to exist) and this table
        (the schema first: ``ensure_postgres_schema``)."""
        from psycopg import sql

        statements = control_statements(self.schema) if controls else []
        definitions: list[sql.Composable] = [
            sql.SQL(f"{_quote(c.name)} {c.type}{' NOT NULL' if c.not_null else ''}")
            for c in self.columns
        ]
        definitions.append(sql.SQL("PRIMARY KEY ({})").format(_identifiers(self.keys)))
        statements.append(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                self.qualified, sql.SQL(", ").join(definitions)
            )
        )
        return statements

    def empty_statements(self) -> list[sql.Composed]:
        from psycopg import sql

        return [
            sql.SQL("TRUNCATE {}").format(self.qualified),
            sql.SQL("DELETE FROM {} WHERE table_name = {}").format(
                self.control(CHECKPOINTS), sql.Literal(self.name)
            ),
            sql.SQL("DELETE FROM {} WHERE table_name = {}").format(
                self.control(REJECTS), sql.Literal(self.name)
            ),
            # Emptied: its copy is not finished any more (``log_copied``), until the new one is.
            sql.SQL("UPDATE {} SET copied = false WHERE table_name = {}").format(
                self.control(LOG_POSITIONS), sql.Literal(self.name)
            ),
        ]

    @cached_property
    def qualified(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))

    def control(self, name: str) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    @cached_property
    def staging(self) -> sql.Composed:
        from psycopg import sql

        # Temporary: private to the connection, gone with it; emptied at every commit.
        return sql.SQL("pg_temp.{}").format(sql.Identifier(f"_chariot_stage_{self.name}"))

    # -- the write path --------------------------------------------------------------------

    @cached_property
    def create_staging(self) -> sql.Composed:
        from psycopg import sql

        types = [
            *(f"{_quote(column.name)} {postgres_type(column)}" for column in self.stream.columns),
            *(f"{_quote(staged)} {output.postgres}" for staged, output in self.in_python),
        ]
        definitions = sql.SQL(", ").join(sql.SQL(text) for text in types)
        return sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
            self.staging, definitions
        )

    @cached_property
    def copy_into_staging(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("COPY {} ({}) FROM STDIN").format(
            self.staging, _identifiers(self.staging_columns)
        )

    @cached_property
    def upsert_from_staging(self) -> sql.Composed:
        from psycopg import sql

        columns = self.columns
        values = [c for c in columns if c.name not in self.keys]
        insert = sql.SQL(
            "INSERT INTO {} AS target ({}) SELECT {} FROM {} ON CONFLICT ({}) "
        ).format(
            self.qualified,
            _identifiers([c.name for c in columns]),
            sql.SQL(", ").join(sql.SQL(c.expression) for c in columns),
            self.staging,
            _identifiers(self.keys),
        )
        if not values:
            return insert + sql.SQL("DO NOTHING")
        names = [c.name for c in values]
        # Replays rewrite nothing that is already equal: no dead rows, no WAL for them.
        return insert + sql.SQL(
            "DO UPDATE SET ({}) = ROW({}) WHERE ({}) IS DISTINCT FROM ({})"
        ).format(
            _identifiers(names),
            _prefixed("EXCLUDED", names),
            _prefixed("target", names),
            _prefixed("EXCLUDED", names),
        )

    @cached_property
    def copy_new_rows(self) -> sql.Composed:
        """The first-load path (``PostgresSink`` proves the keys are new): the staged
        columns straight into the table by COPY when every output is a staged column as it
        is (renamed at most: same value, same type), else COPY into staging and a plain
        INSERT of the transformed rows (no ON CONFLICT). Either fails on a key the table
        holds already (unique violation) rather than skip or double it."""
        from psycopg import sql

        targets = self.direct_targets
        if targets is None:
            return self.copy_into_staging
        return sql.SQL("COPY {} ({}) FROM STDIN").format(self.qualified, _identifiers(targets))

    @cached_property
    def copy_new_csv(self) -> sql.Composed:
        """``copy_new_rows`` taking CSV (the Arrow first load: ``postgres._copy_csv``)."""
        from psycopg import sql

        return self.copy_new_rows + sql.SQL(" (FORMAT csv, ENCODING 'UTF8')")

    @cached_property
    def direct_targets(self) -> tuple[str, ...] | None:
        """The table's column for each staged column, in staging order, when each output is
        exactly one staged column's value (a rename) and each staged column feeds exactly
        one output; None otherwise (a transform computes something in SQL)."""
        staged = {_quote(name): name for name in self.staging_columns}
        target_of: dict[str, str] = {}
        for column in self.columns:
            source = staged.get(column.expression)
            if source is None or source in target_of:
                return None
            target_of[source] = column.name
        if len(target_of) != len(self.staging_columns):
            return None  # a staged column no output keeps
        if not self._staging_types_match(target_of):
            return None
        return tuple(target_of[name] for name in self.staging_columns)

    def _staging_types_match(self, target_of: dict[str, str]) -> bool:
        staging_types = {column.name: postgres_type(column) for column in self.stream.columns}
        staging_types.update({staged: output.postgres for staged, output in self.in_python})
        output_types = {output.name: output.postgres for output in stream_outputs(self.stream)}
        return all(
            staging_types[source] == output_types.get(target)
            for source, target in target_of.items()
        )

    @cached_property
    def insert_from_staging(self) -> sql.Composed:
        """The transformed staged rows into the table, keys known to be new (no ON CONFLICT)."""
        from psycopg import sql

        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            self.qualified,
            _identifiers([c.name for c in self.columns]),
            sql.SQL(", ").join(sql.SQL(c.expression) for c in self.columns),
            self.staging,
        )

    # -- the key, built after a first load (``PostgresSink._drop_key``) ---------------------

    @cached_property
    def _regclass(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("{}::regclass").format(
            sql.Literal(f"{_quote(self.schema)}.{_quote(self.name)}")
        )

    @cached_property
    def key_constraint(self) -> sql.Composed:
        """The name of the table's primary key constraint (no row: none)."""
        from psycopg import sql

        return sql.SQL(
            "SELECT conname FROM pg_constraint WHERE conrelid = {} AND contype = 'p'"
        ).format(self._regclass)

    def drop_key(self, constraint: str) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            self.qualified, sql.Identifier(constraint)
        )

    @cached_property
    def add_key(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
            self.qualified, _identifiers(self.keys)
        )

    @cached_property
    def integer_key(self) -> bool:
        """Every key column an integer: the only keys a first load copies without the key
        (their order is the same in Python, MySQL and PostgreSQL)."""
        types = {
            output.name: output.postgres.strip().lower() for output in stream_outputs(self.stream)
        }
        return all(types.get(key) in ("smallint", "integer", "bigint") for key in self.keys)

    @cached_property
    def delete_duplicate_keys(self) -> sql.Composed:
        """Of rows sharing a key, keep the one written last, as an upsert would: the later
        transaction (the smaller ``age(xmin)``, which wraparound does not fool), then, within
        one, the later row (a COPY into a table without deletes appends)."""
        from psycopg import sql

        same = sql.SQL(" AND ").join(
            sql.SQL("a.{0} = b.{0}").format(sql.Identifier(key)) for key in self.keys
        )
        return sql.SQL(
            "DELETE FROM {0} a USING {0} b WHERE {1} AND (age(a.xmin) > age(b.xmin)"
            " OR (age(a.xmin) = age(b.xmin) AND a.ctid < b.ctid))"
        ).format(self.qualified, same)

    @cached_property
    def is_empty(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(self.qualified)

    @cached_property
    def save_checkpoint(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL(
            "INSERT INTO {0} AS c (table_name, high_water_mark, rows_written, updated_at)"
            " VALUES (%s, %s, %s, now()) ON CONFLICT (table_name) DO UPDATE SET"
            " high_water_mark = EXCLUDED.high_water_mark,"
            " rows_written = coalesce(c.rows_written, 0) + EXCLUDED.rows_written,"
            " updated_at = EXCLUDED.updated_at"
        ).format(self.control(CHECKPOINTS))

    @cached_property
    def save_reject(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL(
            "INSERT INTO {} (table_name, row_key, reason, first_seen, last_seen)"
            " VALUES (%s, %s, %s, now(), now()) ON CONFLICT (table_name, row_key)"
            " DO UPDATE SET reason = EXCLUDED.reason, last_seen = EXCLUDED.last_seen"
        ).format(self.control(REJECTS))

    @cached_property
    def mark_loading(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL(
            "INSERT INTO {} (table_name, owner, started_at) VALUES (%s, %s, now())"
            " ON CONFLICT (table_name) DO UPDATE SET owner = EXCLUDED.owner,"
            " started_at = EXCLUDED.started_at"
        ).format(self.control(LOADS))

    @cached_property
    def clear_loading(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("DELETE FROM {} WHERE table_name = %s").format(self.control(LOADS))

    @cached_property
    def touch_checkpoint(self) -> sql.Composed:
        """A repair changes rows without moving the mark: readers that compare states
        (an aggregation resuming a run) must still see that the table changed."""
        from psycopg import sql

        return sql.SQL("UPDATE {} SET updated_at = now() WHERE table_name = %s").format(
            self.control(CHECKPOINTS)
        )

    @cached_property
    def has_checkpoint(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE table_name = %s)").format(
            self.control(CHECKPOINTS)
        )

    @cached_property
    def any_rejects(self) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE table_name = %s)").format(
            self.control(REJECTS)
        )

    @cached_property
    def delete_loaded_rejects(self) -> sql.Composed:
        """A row rejected once and loadable now (fixed in the source) is no longer a reject."""
        from psycopg import sql

        return sql.SQL("DELETE FROM {} WHERE table_name = %s AND row_key = ANY(%s)").format(
            self.control(REJECTS)
        )


@cache
def layout_for(stream: Stream, schema: str) -> PgTable:
    return PgTable(stream, schema)


def control_statements(schema: str) -> list[sql.Composed]:
    """Create (or bring up to date) the control tables of ``schema``."""
    from psycopg import sql

    identifier = sql.Identifier(schema)
    statements = [
        sql.SQL(text.replace("{schema}", "{}")).format(identifier) for text in CONTROL_TABLES
    ]
    return [
        *statements,
        *(_jsonb_to_text(schema, table, column) for table, column in JSONB_KEY_COLUMNS),
        _add_copied(schema),
    ]


def _jsonb_to_text(schema: str, table: str, column: str) -> sql.Composed:
    from psycopg import sql

    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    alter = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE text USING {}::text").format(
        target, sql.Identifier(column), sql.Identifier(column)
    )
    return sql.SQL(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = {}"
        " AND table_name = {} AND column_name = {} AND data_type = 'jsonb') THEN {}; END IF; END $$"
    ).format(sql.Literal(schema), sql.Literal(table), sql.Literal(column), alter)


def _add_copied(schema: str) -> sql.Composed:
    """Log positions written before ``copied`` existed get it (false: the next sync runs the
    table's keyset pass once more, as it always did, then marks the copy finished)."""
    from psycopg import sql

    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(LOG_POSITIONS))
    return sql.SQL(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.columns"
        " WHERE table_schema = {} AND table_name = {} AND column_name = 'copied') THEN"
        " ALTER TABLE {} ADD COLUMN copied boolean NOT NULL DEFAULT false; END IF; END $$"
    ).format(sql.Literal(schema), sql.Literal(LOG_POSITIONS), target)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _identifiers(names: tuple[str, ...] | list[str]) -> sql.Composed:
    from psycopg import sql

    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _prefixed(prefix: str, names: tuple[str, ...] | list[str]) -> sql.Composed:
    from psycopg import sql

    return sql.SQL(", ").join(sql.SQL(prefix + ".") + sql.Identifier(name) for name in names)
