"""Incremental runs: recompute only the groups the sink recorded as touched (touched.py).

``plan`` decides, in the command's snapshot, whether the promoted summaries can be brought
up to date group by group: changes are tracked, the latest promoted run was computed while
they were, from the same declarations, with every summary table in place, no input table
was changed untracked (an invalidation), no run is open, and no record belongs to another
declaration. Otherwise the run is full (and the reason is reported).

``recompute`` reads the touched groups through the snapshot with the same SQL as a
partition (compute.py), in this one process, then promotes in ONE transaction: the
groups' old rows are deleted, the recomputed ones inserted (a group without input rows
left is simply gone), a run row records it, and the records the snapshot saw are deleted
(those committed meanwhile stay for the next run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chariot.aggregate import compute, schema
from chariot.aggregate.declared import Declared, quoted
from chariot.aggregate.partitions import JobControl
from chariot.aggregate.promote import (
    COMMENT_PREFIX,
    Promotion,
    describe_promotion,
    refuse_going_back,
)
from chariot.aggregate.snapshot import DECLARED, TRACKING, InputSnapshot
from chariot.aggregate.touched import INVALID, forget_seen, touched_records
from chariot.aggregate.worker import read_rows
from chariot.errors import Busy
from chariot.lease import worker_id


@dataclass(frozen=True)
class Plan:
    incremental: bool
    reason: str = ""  # why the run is full
    groups: dict[str, list[str]] = field(default_factory=dict)  # aggregation -> keys (text)
    since_run: int | None = None  # the promoted run the summaries are brought on from
    graph_complete: bool = False  # that run's graph write finished (else: write it whole)

    @property
    def touched(self) -> int:
        return sum(len(keys) for keys in self.groups.values())


@dataclass(frozen=True)
class Recomputed:
    run_id: int
    promotion: Promotion
    rows_in: dict[str, int]


def plan(
    snapshot: InputSnapshot, schema_name: str, declared: tuple[Declared, ...], *, full: bool
) -> Plan:
    """Incremental or full, from what ``snapshot`` sees (see the module docstring)."""
    if full:
        return Plan(False, "a full run was asked for (--full or --restart)")
    connection = snapshot.connection
    if snapshot.state.get(TRACKING) is None:
        return Plan(False, "changes are not tracked (no change-capture sync has written yet)")
    latest = snapshot.promoted_run
    if latest is None:
        return Plan(False, "no summaries were promoted yet")
    if snapshot.open_run:
        return Plan(False, "an unfinished run is open: it is resumed")
    state = snapshot.promoted_state or {}
    if state.get(TRACKING) is None:
        return Plan(False, f"the promoted summaries (run {latest}) predate change tracking")
    if state.get(DECLARED) != snapshot.state[DECLARED]:
        return Plan(False, f"the declared aggregations changed since run {latest}")
    for aggregation in declared:
        comment = connection.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')",
            (schema.qualified(schema_name, aggregation.name),),
        ).fetchone()[0]
        if comment != COMMENT_PREFIX + aggregation.fingerprint:
            return Plan(False, f"no promoted summary table {aggregation.name} to bring on")
    inputs = sorted({table for d in declared for table in d.inputs})
    invalid = [
        row[0]
        for row in connection.execute(
            f"SELECT DISTINCT table_name FROM {schema.qualified(schema_name, INVALID)} "
            "WHERE table_name = ANY(%s) ORDER BY 1",
            (inputs,),
        )
    ]
    if invalid:
        return Plan(
            False,
            f"{', '.join(invalid)} changed without its groups being recorded "
            "(a key-based sync, a repair or a full refresh)",
        )
    fingerprints = {d.name: d.fingerprint for d in declared}
    groups: dict[str, list[str]] = {name: [] for name in fingerprints}
    for name, fingerprint, keys in connection.execute(
        "SELECT aggregation, fingerprint, array_agg(DISTINCT group_key) "
        f"FROM ({touched_records(connection, schema_name)}) AS r GROUP BY 1, 2"
    ):
        if name not in fingerprints:
            continue  # an aggregation no longer declared: its records are simply dropped
        if fingerprint != fingerprints[name]:
            return Plan(False, f"changes were recorded for another declaration of {name}")
        groups[name] = sorted(keys)
    return Plan(
        True, groups=groups, since_run=latest, graph_complete=snapshot.promoted_graph == "done"
    )


def recompute(
    connection: Any,
    snapshot: InputSnapshot,
    schema_name: str,
    declared: tuple[Declared, ...],
    chosen: Plan,
    *,
    partition_rows: int,
    graph: bool,
) -> Recomputed:
    """Recompute the touched groups through ``snapshot`` and promote them (commits).
    Raises ``Busy`` when a run was opened or promoted meanwhile (re-run)."""
    computed: dict[str, list[tuple[Any, ...]]] = {}
    rows_in: dict[str, int] = {}
    for aggregation in declared:
        keys = chosen.groups.get(aggregation.name, [])
        if keys:
            query, params = compute.groups_query(aggregation, schema_name, keys)
            computed[aggregation.name], rows_in[aggregation.name] = read_rows(
                snapshot.connection, aggregation, query, params, where="in the touched groups"
            )
    jobs = JobControl(connection, schema_name, declared)
    jobs.lock_runs()
    opened = jobs.open_run_id()
    if opened is not None:
        connection.rollback()
        raise Busy(
            f"run {opened} was opened by another command while this one recomputed the "
            "touched groups",
            hint="re-run `chariot aggregate` (it resumes that run)",
        )
    refuse_going_back(connection, schema_name, snapshot, None)
    run_id = _create_run(connection, snapshot, schema_name, partition_rows, graph)
    for aggregation in declared:
        if aggregation.name in computed:
            _replace_groups(
                connection,
                schema_name,
                aggregation,
                chosen.groups[aggregation.name],
                computed[aggregation.name],
                run_id,
            )
    forget_seen(connection, schema_name, snapshot.visible, invalidations=True)
    promotion = describe_promotion(connection, schema_name, declared, promoted_now=True)
    connection.commit()
    return Recomputed(run_id, promotion, rows_in)


def _create_run(
    connection: Any, snapshot: InputSnapshot, schema_name: str, partition_rows: int, graph: bool
) -> int:
    """The run row of an incremental run: promoted as it is created (no partitions)."""
    from psycopg.types.json import Jsonb

    return int(
        connection.execute(
            f"INSERT INTO {schema.qualified(schema_name, schema.RUNS)} (partition_rows, "
            "input_state, status, mode, promoted_at, promoted_by, graph_status) "
            "VALUES (%s, %s, 'done', 'incremental', now(), %s, %s) RETURNING run_id",
            (partition_rows, Jsonb(snapshot.state), worker_id(), "pending" if graph else "skipped"),
        ).fetchone()[0]
    )


def _replace_groups(
    connection: Any,
    schema_name: str,
    declared: Declared,
    keys: list[str],
    rows: list[tuple[Any, ...]],
    run_id: int,
) -> None:
    summary = schema.qualified(schema_name, declared.name)
    group = quoted(declared.group_column)
    connection.execute(
        f"DELETE FROM {summary} WHERE {group} = ANY(%s::text[]::{declared.group_postgres}[])",
        (keys,),
    )
    names = [declared.group_column, *(s.column for s in declared.statistics), "run_id"]
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {summary} ({', '.join(map(quoted, names))}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row((*row, run_id))
