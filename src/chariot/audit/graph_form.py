"""How a table is compared with Neo4j, derived from the project's graph model (``[graph]``).

* A table backing a label (``[graph.nodes.X] table = ...``): a row is the node found by its
  key properties, with the properties the table owns, and each relationship the same table
  makes *from* (or to) that node, as the set of the other end's keys (MovieLens' genres:
  ``IN_GENRE`` to value-keyed ``Genre`` nodes; Sakila's ``film.language_id``). Placeholder
  nodes that only relationships created are not rows: a node counts when a property its
  table never leaves NULL is set (any of its properties, when all may be NULL).
* A table extending a label (``extended_by``): the same node, with only the extension's
  properties, counted when they are set.
* A table making a relationship and backing no label (a join table, MovieLens' ratings):
  a row is the relationship found by its endpoints' keys (and its ``identity``).

A value is compared as the sink stores it by its column's Neo4j type (``integer``,
``float``, ``string`` ...): Cypher has no hash function, so the graph's values are
encoded in Python; the source builds the same text in SQL where it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chariot.audit.canonical import Canonical, Field, SourceValue
from chariot.audit.forms import (
    decimal_scale,
    key_names,
    list_delimiter,
    max_chars,
    mysql_expression,
    outputs_of,
    source_value,
)
from chariot.audit.values import Kind
from chariot.project.column_types import TEXTS, parse_source_type
from chariot.project.graph import (
    Graph,
    NodeLabel,
    Relationship,
    property_name,
    table_properties,
)
from chariot.project.model import Split
from chariot.project.outputs import OutputColumn
from chariot.streams import Stream

NEO4J_KINDS: dict[str, Kind] = {
    "integer": "int",
    "float": "float",
    "string": "text",
    "boolean": "bool",
    "date": "date",
    "local datetime": "datetime",
    "zoned datetime": "timestamptz",
    "duration": "duration",
    "list<string>": "textlist",
    "bytes": "bytes",
}
KEY_PART = "\x1f"  # joins the parts of a composite end key inside one set element
ELEMENTS = "\x1e"  # joins the elements of a set of end keys


@dataclass(frozen=True)
class _Node:
    """A label's node pattern: its variable, label and key properties."""

    variable: str
    label: str
    keys: tuple[str, ...]


def graph_canonical(stream: Stream) -> Canonical | None:
    if stream.project is None:
        return None
    graph = stream.project.graph
    for name, label in graph.nodes.items():
        if label.table == stream.name:
            return _own_node(stream, graph, name, label)
        for extension in label.extended_by:
            if extension.table == stream.name:
                node = _Node("n", name, label_keys(stream, graph, name))
                return _node_form(stream, node, extension.properties, [])
    for relationship in graph.relationships:
        if relationship.table == stream.name:
            found = _relationship_form(stream, graph, relationship)
            if found is not None:
                return found
    return None


def label_keys(stream: Stream, graph: Graph, label_name: str) -> tuple[str, ...]:
    """A label's key property names (default: its table's key output names, as property
    names)."""
    label = graph.nodes[label_name]
    if label.key:
        return tuple(label.key)
    if label.table is not None and stream.project is not None:
        from chariot.project.streams import table_stream

        return tuple(property_name(c) for c in key_names(table_stream(stream.project, label.table)))
    return ()


def _own_node(stream: Stream, graph: Graph, name: str, label: NodeLabel) -> Canonical:
    node = _Node("n", name, label_keys(stream, graph, name))
    outputs = [c.name for c in outputs_of(stream)]
    properties = table_properties(label, outputs, key_names(stream))
    owned = [
        r
        for r in graph.relationships
        if r.table == stream.name and _ends_at(r, name, key_names(stream)) is not None
    ]
    return _node_form(stream, node, properties, owned)


def _ends_at(relationship: Relationship, label: str, keys: tuple[str, ...]) -> str | None:
    """ "out" when the relationship starts at the row's own node, "in" when it ends there."""
    if relationship.from_.label == label and tuple(relationship.from_.key) == keys:
        return "out"
    if relationship.to.label == label and tuple(relationship.to.key) == keys:
        return "in"
    return None


def _node_form(
    stream: Stream, node: _Node, properties: dict[str, str], owned: list[Relationship]
) -> Canonical:
    columns = {c.name: c for c in outputs_of(stream)}
    keys = key_names(stream)
    v = node.variable
    fields = [
        graph_field(stream, columns[k], f"{v}.{prop}")
        for k, prop in zip(keys, node.keys, strict=True)
    ]
    property_fields = [
        graph_field(stream, columns[column], f"{v}.{prop}", name=_unique(column, fields))
        for prop, column in properties.items()
    ]
    fields += property_fields
    graph = stream.project.graph if stream.project else Graph()
    for relationship in owned:
        fields.append(_edges_field(stream, graph, node, relationship, fields))
    required = [f.cypher for f, c in zip(property_fields, properties.values(), strict=True)]
    not_null = [
        f.cypher
        for f, c in zip(property_fields, properties.values(), strict=True)
        if not columns[c].nullable
    ]
    shown = not_null or required
    return Canonical(
        stream=stream,
        fields=tuple(fields),
        key=keys,
        cypher_match=f"MATCH ({v}:{node.label})",
        cypher_filter=(
            "(" + " OR ".join(f"{expr} IS NOT NULL" for expr in shown) + ")" if shown else None
        ),
    )


def _unique(name: str, fields: Sequence[Field]) -> str:
    taken = {f.name for f in fields}
    while name in taken:
        name += "_"
    return name


def _edges_field(
    stream: Stream, graph: Graph, node: _Node, relationship: Relationship, fields: list[Field]
) -> Field:
    """The set of the other end's keys of this row's relationships of one type."""
    direction = _ends_at(relationship, node.label, key_names(stream))
    other = relationship.to if direction == "out" else relationship.from_
    other_keys = label_keys(stream, graph, other.label)
    pattern = (
        f"({node.variable})-[:{relationship.type}]->(x:{other.label})"
        if direction == "out"
        else f"({node.variable})<-[:{relationship.type}]-(x:{other.label})"
    )
    parts = f" + '{KEY_PART}' + ".join(f"toString(x.{k})" for k in other_keys)
    columns = {c.name: c for c in outputs_of(stream)}
    ends = [columns[c] for c in other.key]
    split = len(ends) == 1 and ends[0].is_list
    delimiter = list_delimiter(ends[0]) if split else ELEMENTS
    name = other.key[0] if len(other.key) == 1 else relationship.type
    return Field(
        name=_unique(name, fields),
        kind="textset",
        mysql=None,
        postgres="",
        cypher=f"COLLECT {{ MATCH {pattern} RETURN {parts} }}",
        source=_end_keys(stream, ends),
        delimiter=delimiter,
    )


def _end_keys(stream: Stream, ends: list[OutputColumn]) -> SourceValue:
    values = [source_value(stream, column) for column in ends]
    is_list = len(ends) == 1 and ends[0].is_list

    def keys(row: Sequence[Any]) -> list[str]:
        if is_list:
            return [_cypher_string(v) for v in values[0](row) or []]
        parts = [value(row) for value in values]
        if any(part is None for part in parts):
            return []  # a NULL end: no relationship
        return [KEY_PART.join(_cypher_string(part) for part in parts)]

    return keys


def _cypher_string(value: Any) -> str:
    """What Cypher's toString gives for a stored key value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _relationship_form(
    stream: Stream, graph: Graph, relationship: Relationship
) -> Canonical | None:
    columns = {c.name: c for c in outputs_of(stream)}
    start = _Node(
        "a", relationship.from_.label, label_keys(stream, graph, relationship.from_.label)
    )
    end = _Node("b", relationship.to.label, label_keys(stream, graph, relationship.to.label))
    where: dict[str, str] = {}  # output column -> its Cypher expression
    for endpoint, node in ((relationship.from_, start), (relationship.to, end)):
        for column, prop in zip(endpoint.key, node.keys, strict=True):
            where.setdefault(column, f"{node.variable}.{prop}")
    for prop, column in relationship.properties.items():
        where.setdefault(column, f"r.{prop}")
    keys = key_names(stream)
    if any(k not in where for k in keys):
        return None  # the relationship does not identify the table's rows
    fields = [graph_field(stream, columns[column], expr) for column, expr in where.items()]
    by_name = {f.name: f for f in fields}
    fields = [by_name[k] for k in keys] + [f for f in fields if f.name not in keys]
    # A DECIMAL over 18 digits would be clipped by the source's CAST to 64 bits: md5 for it.
    arith = all(
        (f.kind == "int" or (f.kind == "decimal" and not f.wide))
        and f.mysql is not None
        and not columns[f.name].nullable
        for f in fields
    )
    return Canonical(
        stream=stream,
        fields=tuple(fields),
        key=keys,
        cypher_match=(f"MATCH (a:{start.label})-[r:{relationship.type}]->(b:{end.label})"),
        flavor="arith" if arith else "md5",
    )


def graph_kind(stream: Stream, column: OutputColumn) -> Kind:
    kind = NEO4J_KINDS.get(column.neo4j, "text")
    if column.is_list and any(isinstance(s, Split) for s in column.steps):
        return "textlist"
    if kind == "float" and _source_name(stream, column) == "decimal" and not column.steps:
        return "decimal"  # compared with the exact decimal at its scale
    return kind


def _source_name(stream: Stream, column: OutputColumn) -> str:
    try:
        return parse_source_type(stream.column(column.origin).source_type).name
    except (KeyError, ValueError):
        return ""


def graph_field(stream: Stream, column: OutputColumn, cypher: str, name: str = "") -> Field:
    kind = graph_kind(stream, column)
    mysql: str | None = None
    if (
        kind in ("int", "decimal")
        or kind == "text"
        and _source_name(stream, column) in (*TEXTS, "enum")
    ):
        mysql = mysql_expression(stream, column, kind)
    return Field(
        name=name or column.name,
        kind=kind,
        mysql=mysql,
        postgres="",
        cypher=cypher,
        source=_as_stored(source_value(stream, column), kind),
        scale=decimal_scale(stream, column),
        delimiter=list_delimiter(column),
        max_chars=max_chars(stream, column, kind),
        wide=not _narrow(stream, column, kind),
    )


NARROW_INTEGERS = ("tinyint", "smallint", "mediumint", "int", "integer", "year")


def _narrow(stream: Stream, column: OutputColumn, kind: Kind) -> bool:
    """Whether the column's values (a decimal's in units of its last place) stay below 2^60
    (integer hashing then folds them as they are): an INT, a DECIMAL of at most 18 digits."""
    if column.steps:
        return False
    try:
        source = parse_source_type(stream.column(column.origin).source_type)
    except (KeyError, ValueError):
        return False
    if kind == "int":
        return source.name in NARROW_INTEGERS
    if kind == "decimal":
        return source.name == "decimal" and (source.precision or 65) <= 18
    return False


def _as_stored(value: SourceValue, kind: Kind) -> SourceValue:
    """The Python value as the graph stores it: STRING holds a decimal's or a big
    integer's exact text."""
    if kind != "text":
        return value

    def stored(row: Sequence[Any]) -> Any:
        found = value(row)
        if isinstance(found, Decimal | int) and not isinstance(found, bool):
            return str(found)
        return found

    return stored
