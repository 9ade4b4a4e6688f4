"""The project's ``[aggregations]``, compiled into what the machinery needs: the rows each
one reads (its FROM clause and group expression), how it is partitioned, its summary and
staging tables, and its statistics with their PostgreSQL types and node properties.

A ``Declared`` is a small frozen value: it travels to worker processes and Dask machines
with the run id, so a worker never needs the project file itself.

Partitioning: a group key of an integer type (``smallint``, ``integer``, ``bigint``) is cut
into key ranges of about ``partition_rows`` rows each (every group lies in one partition,
so medians see all their values). Any other key (text, a date, an exploded list element) is
computed as ONE partition: still leased, resumable and atomically promoted, just not split
(hash partitions would each have to read the whole input, joined and exploded, to keep
their share).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from chariot.errors import ConfigError
from chariot.project.aggregations import Aggregation
from chariot.project.graph import property_name
from chariot.project.model import Project
from chariot.project.outputs import key_outputs, table_outputs
from chariot.project.summaries import summary_columns

INTEGER_TYPES = ("smallint", "integer", "bigint")
EXACT_TYPES = (*INTEGER_TYPES, "numeric")
FLOAT = "double precision"
# Stamped on every node the write-back touches: which promoted run its properties show.
RUN_PROPERTY = "statsRunId"


def quoted(name: str) -> str:
    """A PostgreSQL identifier, quoted (project names may need it)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quoted(schema)}.{quoted(table)}"


@dataclass(frozen=True)
class Stat:
    """One statistic: one column of the summary."""

    column: str  # summary column
    kind: str
    of: str | None  # the input column (of the aggregated table); None for count
    of_postgres: str | None  # its PostgreSQL type
    postgres: str  # the summary column's type
    nullable: bool
    node_property: str | None  # when the aggregation has a label
    values: tuple[str, ...] = ()  # histogram of exact values (decimal text)
    edges: tuple[str, ...] = ()  # histogram of ranges [e0, e1), ..., [en-1, en]
    prior_weight: str | None = None  # bayesian_average constants (decimal text)
    prior_mean: str | None = None

    @property
    def exact_input(self) -> bool:
        return (self.of_postgres or "").split("(")[0] in EXACT_TYPES

    @property
    def is_float(self) -> bool:
        return self.postgres == FLOAT


@dataclass(frozen=True)
class Declared:
    name: str  # the summary table
    table: str  # the aggregated table
    join_table: str | None
    join_on: tuple[tuple[str, str], ...]  # (column of table, column of join_table)
    group_source: str  # the group column, in `table` or (joined) in `join_table`
    group_joined: bool
    exploded: bool  # a list column: one group per distinct element of a row's list
    group_column: str  # its name in the summary
    group_postgres: str
    statistics: tuple[Stat, ...]
    checked: tuple[str, ...]  # NOT NULL input columns the statistics read (refused if NULL)
    label: str | None
    label_key: str | None  # the label's key property (matched with the group key)
    reference: tuple[str, str] | None  # (table, key column) the group key points at
    fingerprint: str  # of the declaration: a changed one is a new summary

    @property
    def ranged(self) -> bool:
        """Key-range partitions (an integer key); else one partition."""
        return not self.exploded and self.group_postgres in INTEGER_TYPES

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.table,) if self.join_table is None else (self.table, self.join_table)

    @property
    def staging(self) -> str:
        return f"_chariot_agg_s_{self.name[:30]}_{self.fingerprint[:8]}"

    @property
    def count_column(self) -> str | None:
        """A summary column counting the group's rows, if the aggregation has one."""
        return next((s.column for s in self.statistics if s.kind == "count"), None)

    def describe_rows(self) -> str:
        """What one input row is, for people: ``ratings x movies, one per genres element``."""
        text = self.table if self.join_table is None else f"{self.table} x {self.join_table}"
        return text + (f", one per {self.group_source} element" if self.exploded else "")

    def from_clause(self, schema: str, *, sample: float | None = None) -> str:
        """The rows aggregated, with ``g`` their group key: ``FROM ... WHERE g IS NOT NULL``
        is left to the caller (``group_expression``). ``sample``: read only that percent of
        the table's pages (partition planning)."""
        clause = f"FROM {qualified(schema, self.table)} t"
        if sample is not None:
            clause += f" TABLESAMPLE SYSTEM ({float(sample)!r}) REPEATABLE (0)"
        if self.join_table is not None:
            on = " AND ".join(f"t.{quoted(a)} = j.{quoted(b)}" for a, b in self.join_on)
            clause += f" JOIN {qualified(schema, self.join_table)} j ON {on}"
        if self.exploded:
            source = f"{'j' if self.group_joined else 't'}.{quoted(self.group_source)}"
            # a value listed twice in one row's list counts once for that row
            clause += f" CROSS JOIN LATERAL (SELECT DISTINCT unnest({source})) AS x(g)"
        return clause

    @property
    def group_expression(self) -> str:
        if self.exploded:
            return "x.g"
        return f"{'j' if self.group_joined else 't'}.{quoted(self.group_source)}"

    def column(self, stat: Stat) -> str:
        return f"t.{quoted(stat.of or '')}"


def declared_aggregations(project: Project) -> tuple[Declared, ...]:
    """Every aggregation of the project, in the file's order. Raises ``ConfigError`` for a
    summary named like a synced table or Chariot's own tables (a promotion replaces it)."""
    for name in project.aggregations:
        if name in project.tables or name.startswith("_chariot"):
            raise ConfigError(
                f"aggregations.{name}: the summary table would replace "
                + ("the synced table of that name" if name in project.tables else "Chariot's own")
                + " in PostgreSQL",
                hint="give the aggregation another name",
            )
    return tuple(_declared(project, name) for name in project.aggregations)


def _declared(project: Project, name: str) -> Declared:
    aggregation = project.aggregations[name]
    outputs = {c.name: c for c in table_outputs(project.tables[aggregation.table])}
    joined_table, _, group_source = aggregation.group_by.rpartition(".")
    group_table = joined_table or aggregation.table
    group = next(c for c in table_outputs(project.tables[group_table]) if c.name == group_source)
    columns = summary_columns(project, name)
    stats = []
    for column, (stat_name, statistic) in zip(
        columns[1:], aggregation.statistics.items(), strict=True
    ):
        of = aggregation.column_of(statistic)
        stats.append(
            Stat(
                column=stat_name,
                kind=statistic.kind,
                of=of,
                of_postgres=outputs[of].postgres if of else None,
                postgres=column.postgres,
                nullable=column.nullable,
                node_property=column.property,
                values=tuple(str(v) for v in statistic.values),
                edges=tuple(str(e) for e in statistic.edges),
                prior_weight=_text(statistic.prior_weight),
                prior_mean=_text(statistic.prior_mean),
            )
        )
    checked = tuple(
        dict.fromkeys(s.of for s in stats if s.of is not None and not outputs[s.of].nullable)
    )
    join = aggregation.join
    return Declared(
        name=name,
        table=aggregation.table,
        join_table=join.table if join else None,
        join_on=tuple(join.on.items()) if join else (),
        group_source=group_source,
        group_joined=bool(joined_table),
        exploded=group.is_list,
        group_column=aggregation.group_column,
        group_postgres=columns[0].postgres,
        statistics=tuple(stats),
        checked=checked,
        label=aggregation.label,
        label_key=_label_key(project, aggregation),
        reference=_reference(project, aggregation, group.origin, bool(joined_table)),
        fingerprint=_fingerprint(aggregation, columns),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _label_key(project: Project, aggregation: Aggregation) -> str | None:
    if aggregation.label is None:
        return None
    label = project.graph.nodes[aggregation.label]
    if label.key:
        return label.key[0]
    assert label.table is not None  # a values label has its key (checked at load)
    return property_name(key_outputs(project.tables[label.table])[0])


def _reference(
    project: Project, aggregation: Aggregation, origin: str, joined: bool
) -> tuple[str, str] | None:
    """The table whose one-column key the group key points at (for ``ratings.movie_id``:
    ``movies.movie_id``), to report groups that have no row there."""
    if joined:
        return None
    for reference in project.tables[aggregation.table].references:
        target = project.tables.get(reference.table)
        if reference.columns == [origin] and target is not None and len(target.key) == 1:
            return reference.table, key_outputs(target)[0]
    return None


def _fingerprint(aggregation: Aggregation, columns: tuple[object, ...]) -> str:
    text = json.dumps(
        [aggregation.model_dump(mode="json"), [repr(c) for c in columns]], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]
