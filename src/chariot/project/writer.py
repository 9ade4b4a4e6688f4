"""Writing a project as a commented ``chariot.toml``.

The standard library reads TOML but does not write it, and the file is meant to be read
and edited by people, so it is rendered here: one section per table, one line per column,
comments where ``chariot init`` has something to say. ``parse_project(render_project(p))``
gives ``p`` back (a test checks it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chariot.project.aggregations import Aggregation, Statistic
from chariot.project.graph import NodeLabel, Relationship
from chariot.project.model import (
    AnyTransform,
    Column,
    Extract,
    Project,
    Python,
    Rename,
    Split,
    Table,
    TableReference,
)

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# Characters TOML strings must escape (all controls but tab, and DEL).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class Notes:
    """What ``chariot init`` tells the reader, as comments next to what they are about."""

    header: list[str] = field(default_factory=list)
    skipped_tables: dict[str, str] = field(default_factory=dict)  # table -> reason
    skipped_columns: dict[str, list[str]] = field(default_factory=dict)  # table -> lines
    columns: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, column)
    labels: dict[str, str] = field(default_factory=dict)
    relationships: dict[int, str] = field(default_factory=dict)  # position -> note


def render_project(project: Project, notes: Notes | None = None) -> str:
    notes = notes or Notes()
    lines = [*(_comment(line) for line in notes.header)]
    if lines:
        lines.append("")
    lines.append(f"format = {project.format}")
    if project.name is not None:
        lines.append(f"name = {value(project.name)}")
    if notes.skipped_tables:
        lines += ["", "# Tables left out:"]
        lines += [f"#   {name}: {reason}" for name, reason in notes.skipped_tables.items()]
    for name, table in project.tables.items():
        lines += ["", *_table(name, table, notes)]
    lines += _graph(project, notes)
    for name, aggregation in project.aggregations.items():
        lines += ["", *_aggregation(name, aggregation)]
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    return f"# {text}" if text else "#"


# -- tables --------------------------------------------------------------------------------


def _table(name: str, table: Table, notes: Notes) -> Iterator[str]:
    yield f"[tables.{key(name)}]"
    if table.source is not None:
        yield f"source = {value(table.source)}"
    yield f"key = {value(table.key)}"
    if table.depends_on:
        yield f"depends_on = {value(table.depends_on)}"
    if table.references:
        yield "references = ["
        yield from (f"  {value(_reference(r))}," for r in table.references)
        yield "]"
    if table.transforms:
        yield "transforms = ["
        yield from (f"  {value(_transform(t))}," for t in table.transforms)
        yield "]"
    for line in notes.skipped_columns.get(name, []):
        yield _comment(line)
    yield ""
    yield f"[tables.{key(name)}.columns]"
    for column_name, column in table.columns.items():
        note = notes.columns.get((name, column_name))
        line = f"{key(column_name)} = {value(_column(column))}"
        yield f"{line}  # {note}" if note else line


def _reference(reference: TableReference) -> dict[str, Any]:
    fields: dict[str, Any] = {"table": reference.table, "columns": reference.columns}
    for action in ("on_delete", "on_update"):
        if getattr(reference, action) != "no action":  # the default, left unwritten
            fields[action] = getattr(reference, action)
    return fields


def _column(column: Column) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": column.type,
        "postgres": column.postgres,
        "neo4j": column.neo4j,
    }
    if column.nullable:
        fields["nullable"] = True
    for rule in ("min", "max", "step"):
        if getattr(column, rule) is not None:
            fields[rule] = getattr(column, rule)
    return fields


def _transform(transform: AnyTransform) -> dict[str, Any]:
    if isinstance(transform, Rename):
        return {"rename": transform.rename, "to": transform.to}
    if isinstance(transform, Split):
        fields: dict[str, Any] = {"split": transform.split, "delimiter": transform.delimiter}
        if transform.empty:
            fields["empty"] = transform.empty
    elif isinstance(transform, Extract):
        fields = {"extract": transform.extract, "pattern": transform.pattern}
        if transform.group != 1:
            fields["group"] = transform.group
    elif isinstance(transform, Python):
        fields = {"python": transform.python, "function": transform.function, "to": transform.to}
    else:
        fields = {"cast": transform.cast, "to": transform.to}
    if transform.into is not None:
        fields["into"] = transform.into
    return fields


# -- graph ---------------------------------------------------------------------------------


def _graph(project: Project, notes: Notes) -> Iterator[str]:
    for name, label in project.graph.nodes.items():
        yield ""
        if name in notes.labels:
            yield _comment(notes.labels[name])
        yield f"[graph.nodes.{key(name)}]"
        yield from _label(label)
    for position, relationship in enumerate(project.graph.relationships):
        yield ""
        if position in notes.relationships:
            yield _comment(notes.relationships[position])
        yield "[[graph.relationships]]"
        yield from _relationship(relationship)


def _label(label: NodeLabel) -> Iterator[str]:
    if label.table is not None:
        yield f"table = {value(label.table)}"
    if label.key:
        yield f"key = {value(label.key)}"
    if label.values:
        yield f"values = {value(label.values)}"
    if label.properties is not None:
        yield f"properties = {value(label.properties)}"
    elif label.table is not None:
        yield "# properties: every other column (write properties = { name = column } to choose)"
    if label.extended_by:
        extensions = [
            {"table": e.table, **({"properties": e.properties} if e.properties else {})}
            for e in label.extended_by
        ]
        yield f"extended_by = {value(extensions)}"


def _relationship(relationship: Relationship) -> Iterator[str]:
    yield f"type = {value(relationship.type)}"
    yield f"table = {value(relationship.table)}"
    for name, endpoint in (("from", relationship.from_), ("to", relationship.to)):
        yield f"{name} = {value({'label': endpoint.label, 'key': endpoint.key})}"
    if relationship.properties:
        yield f"properties = {value(relationship.properties)}"
    if relationship.identity:
        yield f"identity = {value(relationship.identity)}"


# -- aggregations --------------------------------------------------------------------------


def _aggregation(name: str, aggregation: Aggregation) -> Iterator[str]:
    yield f"[aggregations.{key(name)}]"
    fields = aggregation.model_dump(exclude={"statistics"}, exclude_none=True)
    for field_name, field_value in fields.items():
        if field_value not in ({}, []):
            yield f"{key(field_name)} = {value(field_value)}"
    yield ""
    yield f"[aggregations.{key(name)}.statistics]"
    for column, statistic in aggregation.statistics.items():
        yield f"{key(column)} = {value(_statistic(statistic))}"


def _statistic(statistic: Statistic) -> Any:
    arguments: dict[str, Any] = {}
    if statistic.kind == "histogram":
        arguments["values" if statistic.values else "edges"] = statistic.values or statistic.edges
    if statistic.kind == "bayesian_average":
        arguments["prior_weight"] = statistic.prior_weight
        arguments["prior_mean"] = statistic.prior_mean
    if not arguments:
        return statistic.kind if statistic.of is None else {statistic.kind: statistic.of}
    if statistic.of is not None:
        arguments["of"] = statistic.of
    return {statistic.kind: arguments}


# -- TOML values ---------------------------------------------------------------------------


def key(name: str) -> str:
    return name if _BARE_KEY.match(name) else string(name)


def value(item: Any) -> str:
    """One TOML value: strings, booleans, numbers, lists and inline tables."""
    if isinstance(item, str):
        return string(item)
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, Decimal | float):
        return _number(Decimal(str(item)))
    if isinstance(item, list | tuple):
        return "[" + ", ".join(value(element) for element in item) + "]"
    if isinstance(item, dict):
        if not item:
            return "{}"
        return "{ " + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + " }"
    raise TypeError(f"no TOML form for {type(item).__name__}")


def _number(number: Decimal) -> str:
    text = format(number, "f")
    return text if "." in text else text + ".0"  # a float, so it reads back as a Decimal


def string(text: str) -> str:
    """A literal string when it needs no escape (patterns stay readable), else a basic one."""
    if "'" not in text and not _CONTROL.search(text):
        return f"'{text}'" if "\\" in text or '"' in text else f'"{text}"'
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'
