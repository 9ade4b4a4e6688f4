"""A table's output columns: its source columns after its transforms, in order.

Transforms apply in the order they are written, each to the column of that name at that
point: ``rename`` renames it in place; ``split``, ``extract`` and ``cast`` replace it, or
add a new column at the end when they have ``into``. The result is what PostgreSQL
stores, and what ``[graph]`` and ``[aggregations]`` refer to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from chariot.project.model import (
    AnyTransform,
    Cast,
    Extract,
    Python,
    Rename,
    Split,
    Table,
    transform_column,
)

ValueStep = Split | Extract | Cast | Python

# What a cast produces in Neo4j.
CAST_NEO4J = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "numeric": "float",
    "double precision": "float",
    "text": "string",
}
# What a Python transform's result is in Neo4j, besides a cast's types.
PYTHON_NEO4J = {**CAST_NEO4J, "boolean": "boolean", "text[]": "list<string>"}
TEXT_TYPES = ("text",)


@dataclass(frozen=True)
class OutputColumn:
    name: str
    postgres: str
    neo4j: str
    nullable: bool
    origin: str  # the source column it is computed from
    steps: tuple[ValueStep, ...] = ()  # value transforms, in order (renames only rename)

    @property
    def is_list(self) -> bool:
        return self.postgres.endswith("[]")

    @property
    def is_plain(self) -> bool:
        """A source column as read (perhaps renamed)."""
        return not self.steps

    @property
    def in_python(self) -> bool:
        """Computed by a Python transform: no SQL has it, every sink computes it in Python."""
        return any(isinstance(step, Python) for step in self.steps)


class TransformProblem(ValueError):
    """Transform number ``index`` of a table cannot apply."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def table_outputs(table: Table) -> tuple[OutputColumn, ...]:
    """The output columns of ``table``; raises ``TransformProblem`` for a broken transform."""
    columns = {
        name: OutputColumn(
            name, column.postgres or "", column.neo4j or "", column.nullable, origin=name
        )
        for name, column in table.columns.items()
    }
    for index, transform in enumerate(table.transforms):
        columns = _apply(index, transform, columns)
    return tuple(columns.values())


def key_outputs(table: Table) -> tuple[str, ...]:
    """The output names of the key columns, in key order (keys are only renamed or cast)."""
    outputs = table_outputs(table)
    return tuple(key_output(outputs, key) or key for key in table.key)


def key_output(outputs: tuple[OutputColumn, ...], key: str) -> str | None:
    """The output column carrying source column ``key`` unchanged (renamed or cast at most)."""
    for column in outputs:
        if column.origin == key and all(isinstance(step, Cast) for step in column.steps):
            return column.name
    return None


def _apply(
    index: int, transform: AnyTransform, columns: dict[str, OutputColumn]
) -> dict[str, OutputColumn]:
    name = transform_column(transform)
    current = columns.get(name)
    if current is None:
        raise TransformProblem(
            index, f"no column {name!r} at this point; columns: {', '.join(columns)}"
        )
    if isinstance(transform, Rename):
        return _rename(index, columns, name, transform.to)
    produced = _produce(index, transform, current)
    target = transform.into or name
    if target != name and target in columns:
        raise TransformProblem(index, f"column {target!r} exists already")
    if target == name:
        return {key: produced if key == name else value for key, value in columns.items()}
    return {**columns, target: replace(produced, name=target)}


def _rename(
    index: int, columns: dict[str, OutputColumn], old: str, new: str
) -> dict[str, OutputColumn]:
    if new != old and new in columns:
        raise TransformProblem(index, f"column {new!r} exists already")
    return {
        (new if key == old else key): (replace(value, name=new) if key == old else value)
        for key, value in columns.items()
    }


def _produce(index: int, transform: ValueStep, current: OutputColumn) -> OutputColumn:
    steps = (*current.steps, transform)
    if isinstance(transform, Python):  # a function may take any value, lists included
        return replace(
            current,
            postgres=transform.to,
            neo4j=PYTHON_NEO4J[transform.to],
            nullable=True,
            steps=steps,
        )
    if current.is_list:
        raise TransformProblem(index, f"{current.name!r} is a list already")
    if isinstance(transform, Split):
        _require_text(index, current)
        return replace(
            current, postgres="text[]", neo4j="list<string>", nullable=False, steps=steps
        )
    if isinstance(transform, Extract):
        _require_text(index, current)
        _require_pattern(index, transform)
        return replace(current, postgres="text", neo4j="string", nullable=True, steps=steps)
    return replace(current, postgres=transform.to, neo4j=CAST_NEO4J[transform.to], steps=steps)


def _require_text(index: int, column: OutputColumn) -> None:
    if column.postgres not in TEXT_TYPES:
        raise TransformProblem(
            index, f"{column.name!r} is {column.postgres}, not text: cast it to text first"
        )


def _require_pattern(index: int, transform: Extract) -> None:
    try:
        groups = re.compile(transform.pattern).groups
    except re.error as error:
        raise TransformProblem(index, f"pattern does not compile: {error}") from None
    if transform.group > groups:
        raise TransformProblem(index, f"group {transform.group}: the pattern has {groups}")
