"""References between the parts of a project, checked once the whole file is read.

Each problem names the key path it is about (``graph.relationships[2].to.label``) and what
was expected, so the loader can report ``chariot.toml: <path>: <message>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chariot.project.aggregations import Aggregation
from chariot.project.graph import Endpoint, NodeLabel, Relationship
from chariot.project.model import Project, Table
from chariot.project.outputs import OutputColumn, TransformProblem, key_output, table_outputs

NUMERIC_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")


@dataclass(frozen=True)
class Problem:
    path: str  # dotted key path in the project file
    message: str

    def describe(self, file: str) -> str:
        return f"{file}: {self.path}: {self.message}"


def check_references(project: Project) -> list[Problem]:
    """Every broken reference in ``project``: empty when it is consistent."""
    problems = [p for name, table in project.tables.items() for p in _table(project, name, table)]
    if problems:  # outputs of broken tables are unknown: later checks would only echo them
        return problems
    outputs = {name: {c.name: c for c in table_outputs(t)} for name, t in project.tables.items()}
    checker = _GraphChecker(project, outputs)
    problems += checker.nodes()
    problems += checker.relationships()
    for name, aggregation in project.aggregations.items():
        problems += _aggregation(project, outputs, f"aggregations.{name}", aggregation)
    return problems


# -- tables --------------------------------------------------------------------------------


def _table(project: Project, name: str, table: Table) -> Iterator[Problem]:
    path = f"tables.{name}"
    seen: set[str] = set()
    for position, key in enumerate(table.key):
        where = f"{path}.key[{position}]"
        if key in seen:
            yield Problem(where, f"{key!r} is listed twice")
        seen.add(key)
        if key not in table.columns:
            yield Problem(where, f"expected a column of the table, got {key!r}")
        elif table.columns[key].nullable:
            yield Problem(f"{path}.columns.{key}.nullable", "a key column cannot be nullable")
    for position, other in enumerate(table.depends_on):
        if other not in project.tables:
            yield Problem(f"{path}.depends_on[{position}]", f"no table {other!r} in the project")
    for position, reference in enumerate(table.references):
        where = f"{path}.references[{position}]"
        referred = project.tables.get(reference.table)
        if referred is None:
            yield Problem(f"{where}.table", f"no table {reference.table!r} in the project")
        elif len(reference.columns) != len(referred.key):
            yield Problem(
                f"{where}.columns",
                f"expected {len(referred.key)} column(s), one per key column of "
                f"{reference.table!r}, got {len(reference.columns)}",
            )
        for column in reference.columns:
            if column not in table.columns:
                yield Problem(f"{where}.columns", f"expected a column of the table, got {column!r}")
    try:
        outputs = table_outputs(table)
    except TransformProblem as problem:
        yield Problem(f"{path}.transforms[{problem.index}]", str(problem))
        return
    yield from _key_outputs(path, table, outputs)


def _key_outputs(path: str, table: Table, outputs: tuple[OutputColumn, ...]) -> Iterator[Problem]:
    for key in table.key:
        if key in table.columns and key_output(outputs, key) is None:
            yield Problem(f"{path}.transforms", f"key column {key!r} may only be renamed or cast")


# -- graph ---------------------------------------------------------------------------------


class _GraphChecker:
    def __init__(self, project: Project, outputs: dict[str, dict[str, OutputColumn]]) -> None:
        self.project = project
        self.outputs = outputs

    def arity(self, label: NodeLabel) -> int:
        if label.values:
            return 1
        assert label.table is not None
        table = self.project.tables.get(label.table)
        return len(table.key) if table else len(label.key)

    def column(self, path: str, table: str, column: str) -> Iterator[Problem]:
        if column not in self.outputs[table]:
            known = ", ".join(self.outputs[table])
            yield Problem(path, f"table {table!r} has no column {column!r}; columns: {known}")

    def table(self, path: str, table: str | None) -> Iterator[Problem]:
        if table is not None and table not in self.project.tables:
            yield Problem(path, f"no table {table!r} in the project")

    def nodes(self) -> list[Problem]:
        problems: list[Problem] = []
        for name, label in self.project.graph.nodes.items():
            problems += self.node(f"graph.nodes.{name}", label)
        return problems

    def node(self, path: str, label: NodeLabel) -> Iterator[Problem]:
        if label.values:
            for position, reference in enumerate(label.values):
                yield from self.reference(f"{path}.values[{position}]", reference)
            return
        assert label.table is not None
        yield from self.table(f"{path}.table", label.table)
        if label.table not in self.project.tables:
            return
        keys = len(self.project.tables[label.table].key)
        if label.key and len(label.key) != keys:
            yield Problem(f"{path}.key", f"expected {keys} name(s), one per key column")
        yield from self.properties(f"{path}.properties", label.table, label.properties or {})
        for position, extension in enumerate(label.extended_by):
            where = f"{path}.extended_by[{position}]"
            yield from self.table(f"{where}.table", extension.table)
            if extension.table not in self.project.tables:
                continue
            if len(self.project.tables[extension.table].key) != keys:
                yield Problem(f"{where}.table", f"its key must match {label.table!r}'s key")
            yield from self.properties(f"{where}.properties", extension.table, extension.properties)

    def reference(self, path: str, reference: str) -> Iterator[Problem]:
        table, _, column = reference.partition(".")
        if not column:
            yield Problem(path, f'expected "table.column", got {reference!r}')
        elif table not in self.project.tables:
            yield Problem(path, f"no table {table!r} in the project")
        else:
            yield from self.column(path, table, column)

    def properties(self, path: str, table: str, properties: dict[str, str]) -> Iterator[Problem]:
        for name, column in properties.items():
            yield from self.column(f"{path}.{name}", table, column)

    def relationships(self) -> list[Problem]:
        problems: list[Problem] = []
        seen: dict[tuple[str, str, str], int] = {}
        for position, relationship in enumerate(self.project.graph.relationships):
            path = f"graph.relationships[{position}]"
            problems += self.relationship(path, relationship)
            signature = (relationship.type, relationship.from_.label, relationship.to.label)
            if signature in seen:
                problems.append(
                    Problem(
                        f"{path}.type",
                        f"graph.relationships[{seen[signature]}] defines "
                        f"(:{signature[1]})-[:{signature[0]}]->(:{signature[2]}) already",
                    )
                )
            seen.setdefault(signature, position)
        return problems

    def relationship(self, path: str, relationship: Relationship) -> Iterator[Problem]:
        yield from self.table(f"{path}.table", relationship.table)
        if relationship.table not in self.project.tables:
            return
        yield from self.endpoint(f"{path}.from", relationship.table, relationship.from_)
        yield from self.endpoint(f"{path}.to", relationship.table, relationship.to)
        yield from self.properties(
            f"{path}.properties", relationship.table, relationship.properties
        )
        for position, name in enumerate(relationship.identity):
            if name not in relationship.properties:
                yield Problem(f"{path}.identity[{position}]", f"{name!r} is not a property")

    def endpoint(self, path: str, table: str, endpoint: Endpoint) -> Iterator[Problem]:
        label = self.project.graph.nodes.get(endpoint.label)
        if label is None:
            defined = ", ".join(self.project.graph.nodes) or "none"
            yield Problem(
                f"{path}.label", f"no label {endpoint.label!r} in graph.nodes; labels: {defined}"
            )
            return
        if len(endpoint.key) != self.arity(label):
            yield Problem(
                f"{path}.key",
                f"{endpoint.label} has a {self.arity(label)}-column key, got {len(endpoint.key)}",
            )
        for position, column in enumerate(endpoint.key):
            yield from self.column(f"{path}.key[{position}]", table, column)


# -- aggregations --------------------------------------------------------------------------


def _aggregation(
    project: Project,
    outputs: dict[str, dict[str, OutputColumn]],
    path: str,
    aggregation: Aggregation,
) -> Iterator[Problem]:
    if aggregation.table not in project.tables:
        yield Problem(f"{path}.table", f"no table {aggregation.table!r} in the project")
        return
    columns = outputs[aggregation.table]
    yield from _group(project, outputs, path, aggregation)
    for field in ("measure", "time_column"):
        column = getattr(aggregation, field)
        if column is not None and column not in columns:
            yield Problem(f"{path}.{field}", f"table {aggregation.table!r} has no {column!r}")
    measure = columns.get(aggregation.measure or "")
    if measure is not None and measure.postgres.split("(")[0] not in NUMERIC_TYPES:
        yield Problem(f"{path}.measure", f"{measure.name!r} is {measure.postgres}, not a number")
    for name, statistic in aggregation.statistics.items():
        where = f"{path}.statistics.{name}"
        if name == aggregation.group_column:
            yield Problem(where, "has the name of the group column")
        column = aggregation.column_of(statistic)
        if column is None and statistic.kind != "count":
            needed = "time_column" if statistic.kind in ("earliest", "latest") else "measure"
            yield Problem(where, f"{statistic.kind} needs the aggregation's {needed}")
        elif column is not None and column not in columns:
            yield Problem(where, f"table {aggregation.table!r} has no column {column!r}")
    yield from _write_back(project, path, aggregation)


def _group(
    project: Project,
    outputs: dict[str, dict[str, OutputColumn]],
    path: str,
    aggregation: Aggregation,
) -> Iterator[Problem]:
    table, _, column = aggregation.group_by.rpartition(".")
    join = aggregation.join
    if table and (join is None or join.table != table):
        yield Problem(f"{path}.group_by", f"{table!r} must be the joined table (join.table)")
        return
    if join is not None:
        if join.table not in project.tables:
            yield Problem(f"{path}.join.table", f"no table {join.table!r} in the project")
            return
        for mine, theirs in join.on.items():
            if mine not in outputs[aggregation.table]:
                yield Problem(f"{path}.join.on.{mine}", f"no column {mine!r} in the table")
            if theirs not in outputs[join.table]:
                yield Problem(f"{path}.join.on.{mine}", f"{join.table!r} has no {theirs!r}")
    if column not in outputs[table or aggregation.table]:
        yield Problem(f"{path}.group_by", f"no column {column!r} in {table or aggregation.table!r}")


def _write_back(project: Project, path: str, aggregation: Aggregation) -> Iterator[Problem]:
    for name in aggregation.properties:
        if name not in aggregation.statistics:
            yield Problem(f"{path}.properties.{name}", "not a statistic of this aggregation")
    if aggregation.label is None:
        return
    label = project.graph.nodes.get(aggregation.label)
    if label is None:
        yield Problem(f"{path}.label", f"no label {aggregation.label!r} in graph.nodes")
    elif label.table is not None and len(project.tables[label.table].key) != 1:
        yield Problem(f"{path}.label", f"{aggregation.label} has a composite key")
