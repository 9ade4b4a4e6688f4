"""One state of the input tables for a whole ``chariot aggregate`` command.

The command exports a snapshot (``pg_export_snapshot()``) and keeps its transaction open
while it runs; every worker, in any process or on any Dask machine, reads its partitions
through that snapshot. A sync committing meanwhile is simply not seen. What the snapshot
saw of each input table (its checkpoint: high-water mark, rows written, last change) is
recorded with the run, so a run resumed later on different data is recomputed instead of
mixing two states; so is one resumed with changed declarations (their fingerprints are
part of the state, under ``DECLARED``), and so is one resumed after the sink recorded
changes (``TRACKING``: see touched.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from chariot.aggregate import schema
from chariot.aggregate.declared import Declared
from chariot.aggregate.touched import tracking_state
from chariot.config import Settings
from chariot.connections import first_value, postgres_connect

DECLARED = "_declared"  # input_state key: aggregation -> fingerprint of its declaration
TRACKING = "_tracking"  # input_state key: the recorded changes (None: changes not tracked)


def input_tables(declared: Sequence[Declared]) -> list[str]:
    """The tables the aggregations read, in the order the project first names them."""
    return list(dict.fromkeys(table for d in declared for table in d.inputs))


@dataclass(frozen=True)
class InputSnapshot:
    id: str  # pass to ``SET TRANSACTION SNAPSHOT``
    state: dict[str, Any]  # per input table: [high-water mark, rows written, updated at]
    connection: Any  # holds the exporting transaction open; read-only
    visible: str = ""  # pg_current_snapshot(): which transactions the snapshot sees
    # The job tables just BEFORE the snapshot (never read in it: its lock on them would
    # block another command's table upgrades for as long as this one runs). A run promoted
    # in between only makes the promotion refuse needlessly, never wrongly.
    promoted_run: int | None = None  # the latest promoted run
    promoted_state: dict[str, Any] | None = None  # its input state
    promoted_graph: str | None = None  # its graph status
    open_run: bool = False  # a run is open (running)


@contextmanager
def exported_snapshot(settings: Settings, declared: Sequence[Declared]) -> Iterator[InputSnapshot]:
    import psycopg

    connection = postgres_connect(settings.postgres)
    try:
        runs = _runs(connection, settings.postgres.schema_name)
        connection.commit()
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        exported = first_value(connection.execute("SELECT pg_export_snapshot()").fetchone())
        state = _input_state(connection, settings.postgres.schema_name, input_tables(declared))
        schema_name = settings.postgres.schema_name
        state[DECLARED] = {d.name: d.fingerprint for d in declared}
        state[TRACKING] = tracking_state(connection, schema_name)
        visible = first_value(connection.execute("SELECT pg_current_snapshot()::text").fetchone())
        yield InputSnapshot(
            id=str(exported),
            state=state,
            connection=connection,
            visible=str(visible),
            **runs,
        )
    finally:
        connection.close()


def _runs(connection: Any, schema_name: str) -> dict[str, Any]:
    """The latest promoted run (id, input state, graph status) and whether one is open."""
    runs = schema.qualified(schema_name, schema.RUNS)
    if first_value(connection.execute("SELECT to_regclass(%s)", (runs,)).fetchone()) is None:
        return {}
    latest = connection.execute(
        f"SELECT run_id, input_state, graph_status FROM {runs} WHERE status = 'done' "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    running = connection.execute(f"SELECT 1 FROM {runs} WHERE status = 'running' LIMIT 1")
    found: dict[str, Any] = {"open_run": running.fetchone() is not None}
    if latest is not None:
        found.update(
            promoted_run=int(latest[0]), promoted_state=latest[1], promoted_graph=latest[2]
        )
    return found


def _input_state(connection: Any, schema_name: str, tables: list[str]) -> dict[str, Any]:
    """The checkpoint row of each input table as this snapshot sees it (sync batches and
    repairs both change it)."""
    from psycopg import sql

    found = connection.execute(
        "SELECT to_regclass(%s)", (f'"{schema_name}"."_chariot_checkpoints"',)
    ).fetchone()
    if not found or found[0] is None:
        return {}
    query = sql.SQL(
        "SELECT table_name, high_water_mark, rows_written, updated_at::text"
        " FROM {}._chariot_checkpoints WHERE table_name = ANY(%s) ORDER BY 1"
    ).format(sql.Identifier(schema_name))
    rows = connection.execute(query, (tables,)).fetchall()
    return {str(table): [mark, written, changed] for table, mark, written, changed in rows}
