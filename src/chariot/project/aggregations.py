"""Declared aggregations (``[aggregations.<postgres table>]``): a table grouped by a key,
and the statistics wanted per group, each one output column.

A statistic is written compactly: ``"mean"`` (of the aggregation's ``measure``),
``{ mean = "other_column" }``, ``"earliest"`` / ``"latest"`` (of ``time_column``),
``{ count_distinct = "movie_id" }``, ``{ histogram = { values = [0.5, 1.0] } }`` (a count
per exact value) or ``{ histogram = { edges = [0, 10, 20] } }`` (a count per range
``[e0, e1)``, ..., the last one closed), ``{ bayesian_average = { prior_weight = 10,
prior_mean = 3.5 } }``. Definitions: ``count`` counts the group's rows; the others ignore
NULLs; ``stddev`` is the sample standard deviation (NULL for one value); ``median`` the
middle value, or the mean of the two middle ones; ``bayesian_average`` is
``(prior_weight * prior_mean + sum) / (prior_weight + n)``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, model_validator

from chariot.project.base import Strict

StatisticKind = Literal[
    "count",
    "count_distinct",
    "sum",
    "mean",
    "stddev",
    "min",
    "max",
    "median",
    "histogram",
    "earliest",
    "latest",
    "bayesian_average",
]
# Statistics of the time column rather than the measure.
TIME_STATISTICS = ("earliest", "latest")
# Statistics that need no column at all.
ROW_STATISTICS = ("count",)


class Statistic(Strict):
    """One statistic, one column of the summary table (usually written compactly)."""

    kind: StatisticKind = Field(description="what is computed")
    of: str | None = Field(
        None,
        description="the column it is of; default: `measure` (`time_column` for earliest "
        "and latest)",
    )
    values: list[Decimal] = Field(
        default_factory=list, description="histogram: the exact values to count"
    )
    edges: list[Decimal] = Field(
        default_factory=list, description="histogram: the bounds of the ranges to count"
    )
    prior_weight: Decimal | None = Field(
        None, ge=0, description="bayesian_average: how many values the prior weighs"
    )
    prior_mean: Decimal | None = Field(None, description="bayesian_average: the prior's mean")

    @model_validator(mode="before")
    @classmethod
    def _compact(cls, value: Any) -> Any:
        """``"mean"``, ``{ mean = "col" }`` and ``{ histogram = {...} }`` -> field form."""
        if isinstance(value, str):
            return {"kind": value}
        if isinstance(value, dict) and "kind" not in value and len(value) == 1:
            ((kind, argument),) = value.items()
            if isinstance(argument, str):
                return {"kind": kind, "of": argument}
            if isinstance(argument, dict):
                return {"kind": kind, **argument}
        return value

    @model_validator(mode="after")
    def _arguments(self) -> Statistic:
        if self.kind == "histogram":
            _check_bins(self.values, self.edges)
        elif self.values or self.edges:
            raise ValueError("values and edges belong to a histogram")
        bayesian = self.kind == "bayesian_average"
        if bayesian and (self.prior_weight is None or self.prior_mean is None):
            raise ValueError("bayesian_average needs prior_weight and prior_mean")
        if not bayesian and (self.prior_weight is not None or self.prior_mean is not None):
            raise ValueError("prior_weight and prior_mean belong to bayesian_average")
        if self.kind == "count_distinct" and self.of is None:
            raise ValueError('count_distinct needs a column: { count_distinct = "column" }')
        if self.kind == "count" and self.of is not None:
            raise ValueError("count counts the group's rows: it takes no column")
        return self


def _check_bins(values: list[Decimal], edges: list[Decimal]) -> None:
    if bool(values) == bool(edges):
        raise ValueError("a histogram needs either values (exact) or edges (ranges)")
    bins = values or edges
    if len(edges) == 1:
        raise ValueError("histogram edges need at least two numbers")
    if any(later <= earlier for earlier, later in zip(bins, bins[1:], strict=False)):
        raise ValueError("histogram values/edges must be strictly increasing")


class Join(Strict):
    """Another table the group key is read from (``genres`` of the rated movie)."""

    table: str = Field(description="the project table joined")
    on: dict[str, str] = Field(
        min_length=1, description="column of the aggregated table -> column of this table"
    )


class Aggregation(Strict):
    """A summary table: the rows of one table grouped by a key, one column per statistic."""

    table: str = Field(description="the project table whose rows are aggregated")
    group_by: str = Field(
        description='a column of `table`, or `"joined_table.column"`; a list column groups '
        "by each element"
    )
    group_as: str | None = Field(
        None, description="the group column's name in the summary; default: the column's own"
    )
    join: Join | None = Field(None, description="the table `group_by` names a column of")
    measure: str | None = Field(None, description="the column most statistics are of")
    time_column: str | None = Field(None, description="the column of earliest and latest")
    statistics: dict[str, Statistic] = Field(
        min_length=1, description="summary column -> statistic"
    )
    label: str | None = Field(
        None,
        description="a graph label keyed by the group key: its nodes get the statistics "
        "as properties",
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="summary column -> node property; default: the column in camelCase",
    )

    @property
    def group_column(self) -> str:
        """The group key's output column name in the summary table."""
        return self.group_as or self.group_by.rsplit(".", 1)[-1]

    def column_of(self, statistic: Statistic) -> str | None:
        """The input column a statistic reads (None for ``count``)."""
        if statistic.of is not None:
            return statistic.of
        if statistic.kind in ROW_STATISTICS:
            return None
        if statistic.kind in TIME_STATISTICS:
            return self.time_column
        return self.measure

    def property_of(self, column: str) -> str:
        """The node property a summary column is written to (``rating_count`` ->
        ``ratingCount``)."""
        return self.properties.get(column) or camel_case(column)


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
