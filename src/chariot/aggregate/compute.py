"""The statistics of one partition, computed by PostgreSQL: one ``GROUP BY`` query, read
through the run's snapshot (definitions: ``chariot.project.aggregations``).

Exact inputs (integers, ``numeric``) keep exact sums: the mean is ``sum / n`` and the sample
variance ``(n * sum(x^2) - sum(x)^2) / (n * (n - 1))`` are computed in ``numeric`` and
rounded once to a float. The verification (verify.py) uses ``avg`` and ``stddev_samp`` over
the whole table instead, so the two formulations check each other.
"""

from __future__ import annotations

from typing import Any

from chariot.aggregate.declared import Declared, Stat, qualified, quoted


def partition_query(
    declared: Declared, schema: str, key_after: int | None, key_through: int | None
) -> tuple[str, list[Any]]:
    """``SELECT g, <statistics>..., <NULL counts of checked columns>...`` for one
    partition's groups (a key range; None = unbounded)."""
    if not declared.ranged and pre_aggregable(declared):
        return _pre_aggregated_query(declared, schema), []
    return one_stage_query(declared, schema, key_after, key_through), params_of(
        declared, key_after, key_through
    )


def one_stage_query(
    declared: Declared, schema: str, key_after: int | None, key_through: int | None
) -> str:
    """The partition's query over every input row (params: ``params_of``)."""
    group = declared.group_expression
    conditions = [f"{group} IS NOT NULL"]
    if declared.ranged and key_after is not None:
        conditions.append(f"{group} > %s")
    if declared.ranged and key_through is not None:
        conditions.append(f"{group} <= %s")
    return _query(declared, schema, conditions)


def params_of(declared: Declared, key_after: int | None, key_through: int | None) -> list[Any]:
    bounds = (key_after, key_through) if declared.ranged else ()
    return [bound for bound in bounds if bound is not None]


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
    return (
        "ARRAY["
        + ", ".join(f"count(*) FILTER (WHERE {b})::int" for b in histogram_bins(stat, c))
        + "]"
    )


def histogram_bins(stat: Stat, c: str) -> list[str]:
    """The condition of each bin of a histogram."""
    if stat.values:
        return [f"{c} = {value}::numeric" for value in stat.values]
    edges = stat.edges
    return [
        f"{c} >= {low}::numeric AND {c} {'<=' if i == len(edges) - 2 else '<'} {high}::numeric"
        for i, (low, high) in enumerate(zip(edges, edges[1:], strict=False))
    ]


def _exact(stat: Stat, column: str) -> str:
    return f"{column}::numeric" if stat.exact_input else column


# -- statistics of a joined group, summed up from each join key's ------------------------
# A group from the joined table (a movie's genres) is the same for every row of one join
# key (a movie's ratings): the rows are first reduced to one row per join key (a hash
# aggregate of the table alone), which is joined and exploded instead of every row (a sort
# of every row x element). Only statistics whose per-key parts add up exactly qualify:
# counts, min/max, and sums of exact inputs (integers, numeric); a median, or a sum of
# floats (whose rounding depends on the order), keeps the one-stage query.


def pre_aggregable(declared: Declared) -> bool:
    """The statistics of ``declared`` can be summed up from per-join-key parts."""
    if not declared.group_joined or len(declared.join_on) != 1:
        return False
    join_column = declared.join_on[0][0]
    for stat in declared.statistics:
        if stat.kind == "count_distinct" and stat.of == join_column:
            continue
        if stat.kind in ("count", "min", "max", "earliest", "latest", "histogram"):
            continue  # counts and extremes of parts are those of the whole
        if stat.kind in ("sum", "mean", "stddev", "bayesian_average") and stat.exact_input:
            continue  # exact sums of parts are the exact sum of the whole
        return False
    return True


def _pre_aggregated_query(declared: Declared, schema: str) -> str:
    """The one-stage query's columns, from ``pre``: one row per join key."""
    join_column, joined_column = declared.join_on[0]
    parts: list[str] = [f"t.{quoted(join_column)} AS k", "count(*) AS n"]
    finals: list[str] = []
    for index, stat in enumerate(declared.statistics):
        partial, final = _parts(declared, stat, f"s{index}")
        parts += partial
        finals.append(f"({final})::{stat.postgres}")
    nulls = [
        f"count(*) FILTER (WHERE t.{quoted(c)} IS NULL) AS z{i}"
        for i, c in enumerate(declared.checked)
    ]
    totals = [f"sum(p.z{i})" for i in range(len(declared.checked))]
    exploded = ""
    if declared.exploded:
        source = f"j.{quoted(declared.group_source)}"
        exploded = f" CROSS JOIN LATERAL (SELECT DISTINCT unnest({source})) AS x(g)"
    group = declared.group_expression
    return (
        f"WITH pre AS (SELECT {', '.join([*parts, *nulls])} "
        f"FROM {qualified(schema, declared.table)} t "
        f"WHERE t.{quoted(join_column)} IS NOT NULL GROUP BY 1) "
        f"SELECT {group}, {', '.join([*finals, 'sum(p.n)', *totals])} "
        f"FROM pre p JOIN {qualified(schema, declared.join_table or '')} j "
        f"ON p.k = j.{quoted(joined_column)}{exploded} "
        f"WHERE {group} IS NOT NULL GROUP BY 1"
    )


def _parts(declared: Declared, stat: Stat, name: str) -> tuple[list[str], str]:
    """(per-key columns, the group's value from them) of one statistic; the value is
    computed as the one-stage ``statistic_sql`` computes it, from the same exact sums."""
    c = declared.column(stat)
    kind = stat.kind
    x = f"{c}::numeric"
    if kind == "count":
        return [f"count(*) AS {name}"], f"sum(p.{name})"
    if kind == "count_distinct":  # of the join column: one per-key row per distinct value
        return [], "count(DISTINCT p.k)"
    if kind == "sum":
        return [f"sum({c}) AS {name}"], f"sum(p.{name})"
    if kind in ("min", "earliest"):
        return [f"min({c}) AS {name}"], f"min(p.{name})"
    if kind in ("max", "latest"):
        return [f"max({c}) AS {name}"], f"max(p.{name})"
    n, total = f"sum(p.{name}_n)", f"sum(p.{name}_x)"
    counted = [f"count({c}) AS {name}_n", f"sum({x}) AS {name}_x"]
    if kind == "mean":
        return counted, f"{total} / NULLIF({n}, 0)"
    if kind == "stddev":
        squares = f"sum(p.{name}_q)"
        variance = f"({n} * {squares} - {total} * {total}) / NULLIF({n}::numeric * ({n} - 1), 0)"
        return [*counted, f"sum({x} * {x}) AS {name}_q"], f"sqrt(({variance})::float8)"
    if kind == "bayesian_average":
        weight, prior = f"{stat.prior_weight}::numeric", f"{stat.prior_mean}::numeric"
        return counted, f"({weight} * {prior} + coalesce({total}, 0)) / NULLIF({weight} + {n}, 0)"
    if kind == "histogram":
        bins = histogram_bins(stat, c)
        columns = [f"count(*) FILTER (WHERE {b}) AS {name}_{i}" for i, b in enumerate(bins)]
        sums = ", ".join(f"sum(p.{name}_{i})::int" for i in range(len(bins)))
        return columns, f"ARRAY[{sums}]"
    raise ValueError(f"statistic {kind!r} has no per-key parts")
