"""The summary table an aggregation fills: its columns, their PostgreSQL types, and the
node properties they are written to."""

from __future__ import annotations

from dataclasses import dataclass

from chariot.project.aggregations import Aggregation, Statistic
from chariot.project.model import Project
from chariot.project.outputs import OutputColumn, table_outputs

FLOAT = "double precision"
EXACT_SUMS = ("smallint", "integer", "bigint", "numeric")


@dataclass(frozen=True)
class SummaryColumn:
    name: str
    postgres: str
    nullable: bool
    property: str | None = None  # the node property, when the aggregation has a label


def summary_columns(project: Project, name: str) -> tuple[SummaryColumn, ...]:
    """The group column first, then one column per statistic, in the file's order."""
    aggregation = project.aggregations[name]
    columns = {c.name: c for c in table_outputs(project.tables[aggregation.table])}
    group = _group_column(project, aggregation)
    element = group.postgres.removesuffix("[]")
    summary = [SummaryColumn(aggregation.group_column, element, nullable=False)]
    for column, statistic in aggregation.statistics.items():
        source = columns.get(aggregation.column_of(statistic) or "")
        postgres, nullable = _statistic_type(statistic, source)
        written = aggregation.property_of(column) if aggregation.label else None
        summary.append(SummaryColumn(column, postgres, nullable, written))
    return tuple(summary)


def _group_column(project: Project, aggregation: Aggregation) -> OutputColumn:
    table, _, column = aggregation.group_by.rpartition(".")
    outputs = table_outputs(project.tables[table or aggregation.table])
    return next(c for c in outputs if c.name == column)


def _statistic_type(statistic: Statistic, source: OutputColumn | None) -> tuple[str, bool]:
    kind = statistic.kind
    if kind in ("count", "count_distinct"):
        return "bigint", False
    if kind == "histogram":
        return "integer[]", False
    assert source is not None  # references are checked when the project is loaded
    if kind in ("min", "max", "earliest", "latest"):
        return source.postgres, source.nullable
    if kind == "sum":
        exact = source.postgres.split("(")[0] in EXACT_SUMS
        return ("numeric" if exact else FLOAT), source.nullable
    if kind == "stddev":
        return FLOAT, True  # undefined for a single value
    return FLOAT, source.nullable  # mean, median, bayesian_average
