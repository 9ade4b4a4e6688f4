"""The statistics of one partition, computed by PostgreSQL: one ``GROUP BY`` query, read
through the run's snapshot (definitions: ``chariot.project.aggregations``).

Exact inputs (integers, ``numeric``) keep exact sums: the mean is ``sum / n`` and the sample
variance ``(n * sum(x^2) - sum(x)^2) / (n * (n - 1))`` are computed in ``numeric`` and
rounded once to a float. The verification (verify.py) uses ``avg`` and ``stddev_samp`` over
the whole table instead, so the two formulations check each other.
"""

from __future__ import annotations

from typing import Any

from chariot.aggregate.declared import Declared, Stat, quoted


def partition_query(
    declared: Declared, schema: str, key_after: int | None, key_through: int | None
) -> tuple[str, list[Any]]:
    """``SELECT g, <statistics>..., <NULL counts of checked columns>...`` for one
    partition's groups (a key range; None = unbounded)."""
    group = declared.group_expression
    conditions, params = [f"{group} IS NOT NULL"], []
    if declared.ranged and key_after is not None:
        conditions.append(f"{group} > %s")
        params.append(key_after)
    if declared.ranged and key_through is not None:
        conditions.append(f"{group} <= %s")
        params.append(key_through)
    return _query(declared, schema, conditions), params


def groups_query(declared: Declared, schema: str, keys: list[str]) -> tuple[str, list[Any]]:
    """The same ``SELECT`` for the groups ``keys`` only (their text form; an incremental
    run): a key with no rows left returns no row."""
    group = declared.group_expression
    conditions = [f"{group} IS NOT NULL", f"{group} = ANY(%s::text[]::{declared.group_postgres}[])"]
    return _query(declared, schema, conditions), [keys]


def _query(declared: Declared, schema: str, conditions: list[str]) -> str:
    selected = [f"({statistic_sql(declared, s)})::{s.postgres}" for s in declared.statistics]
    nulls = [f"count(*) FILTER (WHERE t.{quoted(c)} IS NULL)" for c in declared.checked]
    return (
        f"SELECT {declared.group_expression}, {', '.join([*selected, 'count(*)', *nulls])} "
        f"{declared.from_clause(schema)} WHERE {' AND '.join(conditions)} GROUP BY 1"
    )


def statistic_sql(declared: Declared, stat: Stat) -> str:
    """The worker's SQL for one statistic (aggregate over the group's rows)."""
    c = declared.column(stat)
    kind = stat.kind
    if kind == "count":
        return "count(*)"
    if kind == "count_distinct":
        return f"count(DISTINCT {c})"
    if kind == "sum":
        return f"sum({c})"
    if kind == "mean":
        return f"sum({_exact(stat, c)}) / NULLIF(count({c}), 0)"
    if kind == "stddev":
        if not stat.exact_input:
            return f"stddev_samp({c})"
        x = f"{c}::numeric"
        variance = (
            f"(count({c}) * sum({x} * {x}) - sum({x}) * sum({x}))"
            f" / NULLIF(count({c})::numeric * (count({c}) - 1), 0)"
        )
        return f"sqrt(({variance})::float8)"
    if kind == "median":
        return f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {c})"
    if kind in ("min", "earliest"):
        return f"min({c})"
    if kind in ("max", "latest"):
        return f"max({c})"
    if kind == "histogram":
        return histogram_sql(stat, c)
    if kind == "bayesian_average":
        weight, prior = f"{stat.prior_weight}::numeric", f"{stat.prior_mean}::numeric"
        return (
            f"({weight} * {prior} + coalesce(sum({_exact(stat, c)}), 0))"
            f" / NULLIF({weight} + count({c}), 0)"
        )
    raise ValueError(f"unknown statistic {kind!r}")


def histogram_sql(stat: Stat, c: str) -> str:
    """One count per exact value, or per range ``[e_i, e_i+1)`` (the last range closed)."""
    if stat.values:
        bins = [f"{c} = {value}::numeric" for value in stat.values]
    else:
        edges = stat.edges
        bins = [
            f"{c} >= {low}::numeric AND {c} {'<=' if i == len(edges) - 2 else '<'} {high}::numeric"
            for i, (low, high) in enumerate(zip(edges, edges[1:], strict=False))
        ]
    return "ARRAY[" + ", ".join(f"count(*) FILTER (WHERE {b})::int" for b in bins) + "]"


def _exact(stat: Stat, column: str) -> str:
    return f"{column}::numeric" if stat.exact_input else column
