"""Where everything stands: endpoints, row counts, and (from other modules) checkpoints,
aggregation runs and the last audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from chariot.aggregate.report import AggregationRunStatus, aggregation_runs
from chariot.audit.report import LastAudit
from chariot.config import Settings
from chariot.connections import (
    first_value,
    mysql_connect,
    neo4j_session,
    postgres_connection,
    source_engine,
    source_label,
)
from chariot.errors import ChariotError, SourceReadError
from chariot.keys import JsonKey
from chariot.redaction import redact
from chariot.streams import Stream


class EndpointStatus(BaseModel):
    name: str
    role: str
    address: str
    reachable: bool
    version: str | None = None
    error: str | None = None
    row_counts: dict[str, int | None] = Field(
        default_factory=dict,
        description="rows per MovieLens table; null where the table does not exist",
    )


class CheckpointStatus(BaseModel):
    """Where one sink stands on one table."""

    sink: str
    table: str
    high_water_mark: JsonKey | None = Field(None, description="key of the last row written")
    lag: int | None = Field(
        None, description="source rows after the high-water mark; null: source unreachable"
    )


class CaptureStatus(BaseModel):
    """A sink that syncs by change capture: where it is in the source's log, and its lag."""

    sink: str
    mode: str = "cdc"
    position: str = Field(description="the lowest log position of its tables")
    positions: dict[str, str] = Field(default_factory=dict, description="per table")
    source_position: str | None = Field(None, description="the end of the source's log now")
    lag_transactions: int | None = Field(None, description="source transactions not applied")
    lag_changes: int | None = Field(None, description="their row changes")
    lag_seconds: float | None = Field(
        None, description="age of the oldest change not applied; 0: caught up"
    )
    lag_complete: bool = Field(True, description="false: at least this far behind")
    lag_error: str | None = None


class RejectRecord(BaseModel):
    table: str
    key: JsonKey
    reason: str


class SinkRejects(BaseModel):
    """Rows a sink refused (with key and reason), as the sink recorded them."""

    sink: str
    counts: dict[str, int] = Field(default_factory=dict)
    first: list[RejectRecord] = Field(default_factory=list)


class StatusReport(BaseModel):
    tables: list[str] = Field(default_factory=list, description="the project's tables, in order")
    endpoints: list[EndpointStatus]
    checkpoints: list[CheckpointStatus] = Field(default_factory=list)
    change_capture: list[CaptureStatus] = Field(
        default_factory=list,
        description="sinks that sync by change capture (binary log), with their lag; a sink "
        "absent here syncs by key",
    )
    rejects: list[SinkRejects] = Field(default_factory=list)
    sink_errors: dict[str, str] = Field(
        default_factory=dict, description="sinks whose checkpoints could not be read, and why"
    )
    aggregation_runs: list[AggregationRunStatus] = Field(
        default_factory=list, description="the latest `chariot aggregate` runs, newest first"
    )
    last_audit: LastAudit | None = Field(
        None, description="the latest `chariot audit`; null: none yet, or unavailable"
    )
    unavailable: dict[str, str] = Field(
        default_factory=dict,
        description="parts that could not be read (last_audit, aggregation_runs), and why",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="what needs attention, with the command that fixes it (a sink holding "
        "more rows than the source: the source was replaced or rows were deleted)",
    )

    @property
    def all_reachable(self) -> bool:
        return all(endpoint.reachable for endpoint in self.endpoints)

    def is_down(self, name: str) -> bool:
        return any(e.name == name and not e.reachable for e in self.endpoints)


def collect_status(settings: Settings, streams: tuple[Stream, ...] | None = None) -> StatusReport:
    """Servers, row counts of the project's tables (default: the project file's), sync
    state, aggregation runs and the last audit."""
    if streams is None:
        from chariot.project.streams import default_streams

        streams = default_streams()
    endpoints = [
        _probe(
            "mysql",
            "source",
            settings.mysql.display_url(),
            lambda: _source_facts(settings, streams),
        ),
        _probe(
            "postgres",
            "sink",
            settings.postgres.display_url(),
            lambda: _postgres_facts(settings, streams),
        ),
        _probe(
            "neo4j", "sink", settings.neo4j.display_url(), lambda: _neo4j_facts(settings, streams)
        ),
    ]
    report = StatusReport(
        tables=[stream.name for stream in streams],
        endpoints=endpoints,
        notes=_more_than_the_source(endpoints),
    )
    _add_sync_state(report, settings, streams)
    try:
        report.aggregation_runs = aggregation_runs(settings)
    except ChariotError as error:
        report.unavailable["aggregation_runs"] = redact(str(error))
    try:
        report.last_audit = _last_audit(settings)
    except ChariotError as error:
        report.unavailable["last_audit"] = redact(str(error))
    return report


def _more_than_the_source(endpoints: list[EndpointStatus]) -> list[str]:
    """A sink that holds more rows of a table than the source has: a key-based sync cannot
    see deletes or a replaced source, so say so, with the command that reloads the table."""
    source = next((e for e in endpoints if e.role == "source" and e.reachable), None)
    if source is None:
        return []
    notes = []
    for sink in (e for e in endpoints if e.role == "sink" and e.reachable):
        for table, held in sink.row_counts.items():
            expected = source.row_counts.get(table)
            if held is not None and expected is not None and held > expected:
                notes.append(
                    f"{sink.name} holds {held:,} {table} rows, the source {expected:,}: the "
                    "source was replaced or rows were deleted; reload with "
                    f"`chariot sync --full-refresh --table {table} --sink {sink.name}` "
                    "(or `chariot audit --repair`)"
                )
    return notes


def _last_audit(settings: Settings) -> LastAudit | None:
    from chariot.audit.history import last_audit

    return last_audit(settings)


def _add_sync_state(report: StatusReport, settings: Settings, streams: tuple[Stream, ...]) -> None:
    """Each configured sink's checkpoints, lag behind the source and recorded rejects."""
    from chariot.sync.state import sync_state

    state = sync_state(settings, streams=streams)
    report.checkpoints = [CheckpointStatus(**item) for item in state.checkpoints]
    report.rejects = [SinkRejects.model_validate(item) for item in state.rejects]
    report.change_capture = [CaptureStatus.model_validate(item) for item in state.capture]
    report.sink_errors = state.errors


def _probe(name: str, role: str, address: str, facts: Any) -> EndpointStatus:
    try:
        version, counts = facts()
    except ChariotError as error:
        return EndpointStatus(
            name=name, role=role, address=address, reachable=False, error=redact(str(error))
        )
    return EndpointStatus(
        name=name, role=role, address=address, reachable=True, version=version, row_counts=counts
    )


def _source_facts(
    settings: Settings, streams: tuple[Stream, ...]
) -> tuple[str, dict[str, int | None]]:
    """Version and row counts through the same engine ``sync`` reads with (URL or fields)."""
    from sqlalchemy import func, inspect, select, table
    from sqlalchemy.exc import SQLAlchemyError

    engine = source_engine(settings.mysql)
    try:
        with engine.connect() as connection:
            version = _source_version(connection)
            existing = set(inspect(connection).get_table_names())
            counts: dict[str, int | None] = {}
            for stream in streams:
                if stream.source_table in existing:
                    query = select(func.count()).select_from(table(stream.source_table))
                    counts[stream.name] = int(connection.execute(query).scalar_one())
                else:
                    counts[stream.name] = None
        return version, counts
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        raise SourceReadError(
            f"{source_label(settings.mysql)} at {settings.mysql.display_url()}: "
            f"{str(cause).strip().splitlines()[0]}"
        ) from error
    finally:
        engine.dispose()


def _source_version(connection: Any) -> str:
    dialect = connection.dialect
    if dialect.name in ("mysql", "mariadb"):
        return f"MySQL-compatible {connection.exec_driver_sql('SELECT VERSION()').scalar()}"
    version = ".".join(str(part) for part in dialect.server_version_info or ())
    return f"{dialect.name} {version}".strip()


def _mysql_version(cursor: Any) -> str:
    cursor.execute("SELECT VERSION()")
    return f"MySQL-compatible {cursor.fetchone()[0]}"


def _postgres_facts(
    settings: Settings, streams: tuple[Stream, ...]
) -> tuple[str, dict[str, int | None]]:
    from psycopg import sql

    schema = settings.postgres.schema_name
    with postgres_connection(settings.postgres) as connection:
        version = _postgres_version(connection)
        existing = {
            str(row[0])
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
        counts: dict[str, int | None] = {}
        for stream in streams:
            if stream.name in existing:
                query = sql.SQL("SELECT COUNT(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(stream.name)
                )
                counts[stream.name] = int(first_value(connection.execute(query).fetchone()))
            else:
                counts[stream.name] = None
    return version, counts


def _postgres_version(connection: Any) -> str:
    return f"PostgreSQL {first_value(connection.execute('SHOW server_version').fetchone())}"


def _neo4j_facts(
    settings: Settings, streams: tuple[Stream, ...]
) -> tuple[str, dict[str, int | None]]:
    from chariot.project.graph_counts import graph_count_query

    with neo4j_session(settings.neo4j) as session:
        version = _neo4j_version(session)
        counts: dict[str, int | None] = {}
        for stream in streams:
            query = graph_count_query(stream)
            counts[stream.name] = None if query is None else int(session.run(query).single()[0])
    return version, counts


def _neo4j_version(session: Any) -> str:
    record = session.run(
        "CALL dbms.components() YIELD name, versions, edition "
        "RETURN name + ' ' + versions[0] + ' ' + edition AS version"
    ).single()
    return str(record["version"]) if record else "unknown"


DRIVERS = ("pymysql", "psycopg", "neo4j", "sqlalchemy")


def driver_versions() -> dict[str, str | None]:
    """The installed database drivers' versions (None: not installed), without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for name in DRIVERS:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def server_versions(settings: Settings, *, timeout: float = 3.0) -> dict[str, str]:
    """The version of each server that answers within ``timeout`` seconds in all.

    The same queries as ``collect_status``, all three at once. A server that is down, refuses
    the credentials or is slow is left out: this is for ``chariot -v --version``, which must
    stay quick and never fail because a server is away.
    """
    import contextlib
    import threading
    import time

    found: dict[str, str] = {}

    def probe(name: str, query: Callable[[], str]) -> None:
        with contextlib.suppress(Exception):  # any failure: that server is left out
            found[name] = query()

    probes = _version_probes(settings, connect_timeout=max(1, int(timeout)))
    # Daemon threads: a server that hangs past the deadline is abandoned, not waited for.
    threads = [threading.Thread(target=probe, args=item, daemon=True) for item in probes.items()]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: found[name] for name in probes if name in found}


def _version_probes(settings: Settings, *, connect_timeout: int) -> dict[str, Callable[[], str]]:
    def mysql() -> str:
        connection = mysql_connect(settings.mysql, connect_timeout=connect_timeout)
        try:
            with connection.cursor() as cursor:
                return _mysql_version(cursor)
        finally:
            connection.close()

    def postgres() -> str:
        with postgres_connection(settings.postgres) as connection:
            return _postgres_version(connection)

    def neo4j() -> str:
        with neo4j_session(settings.neo4j) as session:
            return _neo4j_version(session)

    return {"mysql": mysql, "postgres": postgres, "neo4j": neo4j}
