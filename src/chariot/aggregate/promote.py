"""Staging -> summary tables, in ONE transaction, exactly once per run.

``DELETE`` + ``INSERT ... SELECT`` inside one transaction: under MVCC every reader sees either
the previous complete summaries or the new complete ones, never an empty or partial table
(the original demo's ``TRUNCATE`` + ``INSERT`` showed readers an empty table). The run row
is locked first, so when two commands finish the same run only one promotes it.

A summary table is created by its first promotion; its comment holds the declaration's
fingerprint, and a table whose declaration changed is dropped and created anew (in the same
transaction, so readers still see the old summary or the new one).

A promotion never goes back in time: a run computed from a snapshot older than another
promotion (an incremental run promoted while it computed) is refused, and re-running
recomputes it. It deletes the recorded changes its snapshot saw (touched.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chariot.aggregate import schema
from chariot.aggregate.declared import Declared, quoted
from chariot.aggregate.snapshot import InputSnapshot
from chariot.aggregate.touched import forget_seen
from chariot.errors import AggregationError, Busy

COMMENT_PREFIX = "chariot aggregation "


@dataclass(frozen=True)
class Unreferenced:
    """Groups whose key has no row in the table the key points at (rated movies absent
    from ``movies``): summarised all the same."""

    table: str  # the referenced table
    groups: int
    rows: int | None  # their rows, when the aggregation counts rows


@dataclass(frozen=True)
class Promotion:
    promoted_now: bool  # False: another command had already promoted this run
    groups: dict[str, int]  # summary table -> rows
    unreferenced: dict[str, Unreferenced]


def promote(
    connection: Any,
    schema_name: str,
    run_id: int,
    declared: Sequence[Declared],
    *,
    promoted_by: str,
    graph: bool,
    snapshot: InputSnapshot | None = None,
) -> Promotion:
    """Replace the summaries with run ``run_id``'s staging rows and close the run (commits).
    ``snapshot``: the promoting command's, for the time check and the recorded changes."""
    runs = schema.qualified(schema_name, schema.RUNS)
    partitions = schema.qualified(schema_name, schema.PARTITIONS)
    row = connection.execute(
        f"SELECT status FROM {runs} WHERE run_id = %s FOR UPDATE", (run_id,)
    ).fetchone()
    if row is None or row[0] == "abandoned":
        connection.rollback()
        raise AggregationError(
            f"run {run_id} was abandoned (a `chariot aggregate --restart` started a new run)",
            hint="re-run `chariot aggregate` to continue the new run",
        )
    if row[0] == "done":
        promotion = describe_promotion(connection, schema_name, declared, promoted_now=False)
        connection.rollback()
        return promotion
    unfinished = connection.execute(
        f"SELECT count(*) FROM {partitions} WHERE run_id = %s AND status <> 'done'",
        (run_id,),
    ).fetchone()[0]
    if unfinished:
        connection.rollback()
        raise AggregationError(
            f"run {run_id} still has {unfinished} unfinished partitions; not promoting"
        )
    if snapshot is not None:
        refuse_going_back(connection, schema_name, snapshot, run_id)
    for aggregation in declared:
        _replace_summary(connection, schema_name, aggregation, run_id)
    if snapshot is not None:
        forget_seen(connection, schema_name, snapshot.visible, invalidations=True)
    connection.execute(
        f"""UPDATE {runs} SET status = 'done', promoted_at = now(), updated_at = now(),
                promoted_by = %s, graph_status = %s WHERE run_id = %s""",
        (promoted_by, "pending" if graph else "skipped", run_id),
    )
    promotion = describe_promotion(connection, schema_name, declared, promoted_now=True)
    connection.commit()
    return promotion


def refuse_going_back(
    connection: Any, schema_name: str, snapshot: InputSnapshot, run_id: int | None
) -> None:
    """Raise ``Busy`` (rolled back) when a run other than ``run_id`` was promoted after
    ``snapshot`` was taken: promoting would replace newer summaries with older ones."""
    row = connection.execute(
        f"SELECT max(run_id) FROM {schema.qualified(schema_name, schema.RUNS)} "
        "WHERE status = 'done' AND run_id IS DISTINCT FROM %s",
        (run_id,),
    ).fetchone()
    latest = None if row is None or row[0] is None else int(row[0])
    if latest != snapshot.promoted_run:
        connection.rollback()
        raise Busy(
            f"run {latest} was promoted by another command while this one computed from an "
            "earlier state of the synced tables: not replacing its summaries with older ones",
            hint="re-run `chariot aggregate`",
        )


def _replace_summary(connection: Any, schema_name: str, declared: Declared, run_id: int) -> None:
    summary = schema.qualified(schema_name, declared.name)
    staging = schema.qualified(schema_name, declared.staging)
    comment = connection.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (summary,)
    ).fetchone()[0]
    wanted = COMMENT_PREFIX + declared.fingerprint
    if comment != wanted:  # missing, or declared differently before
        connection.execute(f"DROP TABLE IF EXISTS {summary}")
        connection.execute(schema.summary_ddl(schema_name, declared))
        connection.execute(f"COMMENT ON TABLE {summary} IS '{wanted}'")
    else:
        connection.execute(f"DELETE FROM {summary}")
    columns = ", ".join(
        quoted(c) for c in [declared.group_column, *(s.column for s in declared.statistics)]
    )
    connection.execute(
        f"INSERT INTO {summary} ({columns}, run_id) SELECT {columns}, run_id FROM {staging} "
        "WHERE run_id = %s",
        (run_id,),
    )
    connection.execute(f"DELETE FROM {staging} WHERE run_id = %s", (run_id,))


def describe_promotion(
    connection: Any, schema_name: str, declared: Sequence[Declared], *, promoted_now: bool
) -> Promotion:
    existing = schema.existing_tables(connection, schema_name)
    groups: dict[str, int] = {}
    unreferenced: dict[str, Unreferenced] = {}
    for aggregation in declared:
        if aggregation.name not in existing:
            groups[aggregation.name] = 0
            continue
        summary = schema.qualified(schema_name, aggregation.name)
        groups[aggregation.name] = int(
            connection.execute(f"SELECT count(*) FROM {summary}").fetchone()[0]
        )
        if aggregation.reference is None or aggregation.reference[0] not in existing:
            continue
        table, key = aggregation.reference
        count = aggregation.count_column
        rows = f"coalesce(sum(s.{quoted(count)}), 0)" if count else "NULL"
        found = connection.execute(
            f"SELECT count(*), {rows} FROM {summary} s WHERE NOT EXISTS (SELECT 1 FROM "
            f"{schema.qualified(schema_name, table)} r "
            f"WHERE r.{quoted(key)} = s.{quoted(aggregation.group_column)})"
        ).fetchone()
        unreferenced[aggregation.name] = Unreferenced(
            table, int(found[0]), None if found[1] is None else int(found[1])
        )
    return Promotion(promoted_now, groups, unreferenced)
