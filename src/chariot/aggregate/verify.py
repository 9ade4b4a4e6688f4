"""Check the promoted summaries against an independent recomputation in plain SQL.

``check_summaries(settings)`` recomputes every declared aggregation from its input table(s)
with one whole-table ``GROUP BY`` generated from the declaration - ``avg``, ``stddev_samp``,
``percentile_cont``, ``count(*) FILTER`` per histogram bin, ``min``/``max`` - none of the
partitioned computation (compute.py) - and compares, key by key, every summary table and,
with ``neo4j=True``, the node properties of every aggregation that names a label
(``neo4j:<Label>``).

Counts, keys, exact values, timestamps and histograms must be equal; floating values may
differ by at most ``FLOAT_TOLERANCE`` times max(1, |expected|). A missing summary table
counts as empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, computed_field

from chariot.aggregate import schema
from chariot.aggregate.compute import histogram_sql
from chariot.aggregate.declared import (
    RUN_PROPERTY,
    Declared,
    Stat,
    declared_aggregations,
    quoted,
)
from chariot.aggregate.graph import cypher_name, labelled, neo4j_value
from chariot.config import Settings
from chariot.connections import neo4j_session, postgres_connection
from chariot.errors import AuditError
from chariot.project.model import Project

FLOAT_TOLERANCE = 1e-9


class ValueDifference(BaseModel):
    key: int | str
    column: str
    expected: Any = None
    actual: Any = None


class SummaryTableCheck(BaseModel):
    """One summary (a table, or the Movie properties in Neo4j) against the recomputation."""

    name: str
    rows_expected: int
    rows_actual: int
    rows_compared: int = Field(description="keys present on both sides, compared column by column")
    rows_differing: int = Field(description="compared keys with at least one different value")
    missing_count: int = Field(description="keys the recomputation has and the summary lacks")
    unexpected_count: int = Field(description="keys the summary has and the recomputation lacks")
    missing_keys: list[int | str] = Field(default_factory=list)
    unexpected_keys: list[int | str] = Field(default_factory=list)
    differences: list[ValueDifference] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.rows_differing == 0 and self.missing_count == 0 and self.unexpected_count == 0


class SummaryCheck(BaseModel):
    promoted_run_id: int | None = Field(
        description="the run whose summaries are promoted; None if none"
    )
    tables: list[SummaryTableCheck]
    limit: int = Field(description="cap on keys and differences listed per table")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(table.ok for table in self.tables)


def check_summaries(
    settings: Settings,
    *,
    neo4j: bool = True,
    limit: int = 20,
    project: Project | None = None,
) -> SummaryCheck:
    """Compare the promoted summaries (and their node properties) with plain-SQL truth;
    ``project`` defaults to the project file."""
    if project is None:
        from chariot.project import load_project

        project = load_project()
    declared = declared_aggregations(project)
    schema_name = settings.postgres.schema_name
    checks = []
    truths: dict[str, dict[Any, tuple[Any, ...]]] = {}
    with postgres_connection(settings.postgres) as connection:
        existing = schema.existing_tables(connection, schema_name)
        for aggregation in declared:
            missing = [t for t in aggregation.inputs if t not in existing]
            if missing:
                raise AuditError(
                    f"no {missing[0]} table in schema {schema_name}",
                    hint="run `chariot sync` first",
                )
            truth = _fetch(connection, truth_query(aggregation, schema_name))
            truths[aggregation.name] = truth
            actual = (
                _fetch(connection, actual_query(aggregation, schema_name))
                if aggregation.name in existing
                else {}
            )
            checks.append(compare(aggregation.name, truth, actual, aggregation.statistics, limit))
        run_id = promoted_run_id(connection, schema_name, existing)
    if neo4j:
        for aggregation in labelled(declared):
            checks.append(
                compare(
                    f"neo4j:{aggregation.label}:{aggregation.name}"
                    if len(labelled(declared)) > 1
                    else f"neo4j:{aggregation.label}",
                    {k: _as_neo4j(v) for k, v in truths[aggregation.name].items()},
                    _neo4j_nodes(
                        settings,
                        aggregation,
                        alone=[d.label for d in labelled(declared)].count(aggregation.label) == 1,
                    ),
                    aggregation.statistics,
                    limit,
                    neo4j=True,
                )
            )
    return SummaryCheck(promoted_run_id=run_id, tables=checks, limit=limit)


def truth_query(declared: Declared, schema_name: str) -> str:
    """The whole-table recomputation: group key, then one value per statistic."""
    group = declared.group_expression
    values = ", ".join(
        f"({_truth_sql(declared, s)})::{s.postgres} AS {quoted(s.column)}"
        for s in declared.statistics
    )
    return (
        f"SELECT {group} AS {quoted(declared.group_column)}, {values} "
        f"{declared.from_clause(schema_name)} "
        f"WHERE {group} IS NOT NULL GROUP BY 1"
    )


def _truth_sql(declared: Declared, stat: Stat) -> str:
    c = declared.column(stat)
    simple = {
        "count": "count(*)",
        "count_distinct": f"count(DISTINCT {c})",
        "sum": f"sum({c})",
        "mean": f"avg({c})",
        "stddev": f"stddev_samp({c})",
        "median": f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {c})",
        "min": f"min({c})",
        "max": f"max({c})",
        "earliest": f"min({c})",
        "latest": f"max({c})",
    }
    if stat.kind in simple:
        return simple[stat.kind]
    if stat.kind == "histogram":
        return histogram_sql(stat, c)
    # bayesian_average: the mean damped towards the prior as if by prior_weight more values
    return (
        f"({stat.prior_mean}::numeric * {stat.prior_weight}::numeric + sum({c}::numeric))"
        f" / ({stat.prior_weight}::numeric + count({c}))"
    )


def actual_query(declared: Declared, schema_name: str) -> str:
    columns = ", ".join(quoted(s.column) for s in declared.statistics)
    return (
        f"SELECT {quoted(declared.group_column)}, {columns} "
        f"FROM {schema.qualified(schema_name, declared.name)}"
    )


def promoted_run_id(connection: Any, schema_name: str, existing: set[str]) -> int | None:
    if schema.RUNS not in existing:
        return None
    row = connection.execute(
        f"SELECT max(run_id) FROM {schema.qualified(schema_name, schema.RUNS)} "
        "WHERE promoted_at IS NOT NULL"
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _fetch(connection: Any, query: str) -> dict[Any, tuple[Any, ...]]:
    """Rows keyed by their first column (verification is not a hot path)."""
    return {row[0]: tuple(row[1:]) for row in connection.execute(query)}


def _as_neo4j(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(neo4j_value(value) for value in row)


def _neo4j_nodes(
    settings: Settings, declared: Declared, *, alone: bool
) -> dict[Any, tuple[Any, ...]]:
    """Nodes of the label that carry any of the aggregation's properties (or the run stamp,
    when no other aggregation writes onto the label)."""
    properties = [str(s.node_property) for s in declared.statistics]
    returned = ", ".join(f"n.{cypher_name(name)}" for name in properties)
    condition = " OR ".join(
        f"n.{cypher_name(name)} IS NOT NULL"
        for name in [*properties, *([RUN_PROPERTY] if alone else [])]
    )
    query = (
        f"MATCH (n:{cypher_name(str(declared.label))}) WHERE {condition} "
        f"RETURN n.{cypher_name(str(declared.label_key))}, {returned}"
    )
    with neo4j_session(settings.neo4j) as session:
        return {
            record[0]: tuple(_native(value) for value in record[1:])
            for record in session.run(query)
        }


def _native(value: Any) -> Any:
    """Neo4j temporal values as Python's, to compare with PostgreSQL's."""
    to_native = getattr(value, "to_native", None)
    return to_native() if callable(to_native) else value


def compare(
    name: str,
    expected: dict[Any, tuple[Any, ...]],
    actual: dict[Any, tuple[Any, ...]],
    columns: Sequence[Stat],
    limit: int,
    *,
    neo4j: bool = False,
) -> SummaryTableCheck:
    """Key-by-key, column-by-column comparison; lists are capped at ``limit``."""
    missing = sorted(expected.keys() - actual.keys(), key=_sort_key)
    unexpected = sorted(actual.keys() - expected.keys(), key=_sort_key)
    shared = sorted(expected.keys() & actual.keys(), key=_sort_key)
    differing: set[Any] = set()
    differences: list[ValueDifference] = []
    for index, column in enumerate(columns):
        wanted = [expected[key][index] for key in shared]
        found = [actual[key][index] for key in shared]
        for position in np.flatnonzero(_mismatches(column, wanted, found, neo4j=neo4j)):
            key = shared[position]
            differing.add(key)
            if len(differences) < limit:
                differences.append(
                    ValueDifference(
                        key=key,
                        column=column.column,
                        expected=wanted[position],
                        actual=found[position],
                    )
                )
    return SummaryTableCheck(
        name=name,
        rows_expected=len(expected),
        rows_actual=len(actual),
        rows_compared=len(shared),
        rows_differing=len(differing),
        missing_count=len(missing),
        unexpected_count=len(unexpected),
        missing_keys=missing[:limit],
        unexpected_keys=unexpected[:limit],
        differences=differences,
    )


def _mismatches(
    column: Stat, wanted: list[Any], found: list[Any], *, neo4j: bool = False
) -> np.ndarray:
    """Floats (and, in Neo4j, ``numeric`` values, stored as floats) within the tolerance;
    everything else equal."""
    numeric = column.postgres.split("(")[0] == "numeric"
    if not (column.is_float or (neo4j and numeric)):
        return np.array(
            [_normalise(w) != _normalise(f) for w, f in zip(wanted, found, strict=True)], dtype=bool
        )
    expected = np.array([np.nan if w is None else float(w) for w in wanted], dtype=np.float64)
    actual = np.array([np.nan if f is None else float(f) for f in found], dtype=np.float64)
    both_null = np.isnan(expected) & np.isnan(actual)
    close = np.abs(expected - actual) <= FLOAT_TOLERANCE * np.maximum(1.0, np.abs(expected))
    return ~(both_null | close)


def _normalise(value: Any) -> Any:
    return [_normalise(item) for item in value] if isinstance(value, list | tuple) else value


def _sort_key(key: Any) -> tuple[str, Any]:
    return (type(key).__name__, key)
