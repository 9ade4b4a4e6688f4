"""Finding a table's rows in the graph by the values of some of their columns.

Foreign-key actions are not in the binary log, so the change writer asks each sink which
rows of a child table point at a changed parent (``ChangeSink.keys_referencing``). The graph
holds a row as its own node (key and properties on it, a reference as a relationship to the
referenced node) or, for a table backing no label, as one relationship between the nodes its
columns name. ``referencing_query`` writes the one Cypher statement that reads, for a list of
column values, the keys of the rows holding them; it refuses what the graph cannot answer.

Only plain columns (a source column as read, perhaps renamed) can be looked up and given
back: a transformed key or reference has no way back to the source value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chariot.errors import SinkWriteError
from chariot.project.column_types import parse_source_type
from chariot.sinks.neo4j.plan import End, Link, RowNode, TablePlan
from chariot.sinks.neo4j.statements import quoted
from chariot.streams import Stream


@dataclass(frozen=True)
class Lookup:
    """A statement taking ``$values`` (lists in the looked-up columns' order, as graph
    values) and returning ``key``: each matching row's key, in key order, as graph values."""

    cypher: str


def referencing_query(plan: TablePlan, columns: Sequence[str]) -> Lookup:
    """The lookup of ``plan``'s rows by the output ``columns``; ``SinkWriteError`` when the
    graph model does not store the table's rows or those columns in a way to find them."""
    problem = f"neo4j sink, table {plan.table}: cannot find rows by {', '.join(columns)}"
    for name in (*plan.key_columns, *columns):
        if plan.outputs[name].is_list:
            raise SinkWriteError(f"{problem}: {name} is a list in the graph")
        if not plan.outputs[name].is_plain:
            raise SinkWriteError(f"{problem}: {name} is transformed, with no way back")
    own = next((node for node in plan.nodes if node.own), None) or next(iter(plan.nodes), None)
    if own is not None:
        return _by_node(plan, own, columns, problem)
    for link in plan.links:
        found = _by_link(plan, link, columns)
        if found is not None:
            return found
    raise SinkWriteError(
        f"{problem}: the graph model stores no node or relationship that holds both the "
        "table's key and those columns",
        hint="add the columns as properties of the table's node, or map the table to a "
        "label ([graph.nodes]) in the project file",
    )


def _by_node(plan: TablePlan, node: RowNode, columns: Sequence[str], problem: str) -> Lookup:
    index = plan.nodes.index(node)
    keys = dict(zip(node.columns, node.label.key, strict=True))
    # A reference a relationship holds: seek the referenced node by its unique key.
    for link in plan.links:
        if link.own_end is None or _row_end(link).row_node != index:
            continue
        other = link.end if link.own_end == "start" else link.start
        if set(columns) != set(other.columns):
            continue
        ends = dict(zip(other.columns, other.label.key, strict=True))
        seek = ", ".join(f"{quoted(ends[c])}: v[{columns.index(c)}]" for c in other.columns)
        row = f"(n:{quoted(node.label.name)})"
        referenced = f"(o:{quoted(other.label.name)} {{{seek}}})"
        arrow = (
            f"{row}-[:{quoted(link.type)}]->{referenced}"
            if link.own_end == "start"
            else f"{referenced}-[:{quoted(link.type)}]->{row}"
        )
        return _statement(
            f"MATCH {arrow}",
            _held(plan, node),
            [f"n.{quoted(keys[c])}" for c in plan.key_columns],
        )
    # Else properties of the row's node (or its key).
    stored = {**keys, **{column: prop for prop, column in node.properties.items()}}
    missing = [c for c in columns if c not in stored]
    if missing:
        raise SinkWriteError(
            f"{problem}: the graph keeps {', '.join(missing)} neither as a property of "
            f"{node.label.name} nor as one relationship to the referenced node",
            hint="add the columns to the label's properties in the project file",
        )
    matches = [f"n.{quoted(stored[c])} = v[{i}]" for i, c in enumerate(columns)]
    return _statement(
        f"MATCH (n:{quoted(node.label.name)})",
        matches + _held(plan, node),
        [f"n.{quoted(keys[c])}" for c in plan.key_columns],
    )


def _by_link(plan: TablePlan, link: Link, columns: Sequence[str]) -> Lookup | None:
    """A table backing no label: its rows are relationships; None when this type does not
    hold the key and the columns."""
    stored: dict[str, str] = {}
    for variable, end in (("a", link.start), ("b", link.end)):
        for column, prop in zip(end.columns, end.label.key, strict=True):
            stored.setdefault(column, f"{variable}.{quoted(prop)}")
    for prop, column in link.properties.items():
        stored.setdefault(column, f"r.{quoted(prop)}")
    if any(c not in stored for c in (*plan.key_columns, *columns)):
        return None
    pattern = (
        f"(a:{quoted(link.start.label.name)})-[r:{quoted(link.type)}]->"
        f"(b:{quoted(link.end.label.name)})"
    )
    matches = [f"{stored[c]} = v[{i}]" for i, c in enumerate(columns)]
    return _statement(f"MATCH {pattern}", matches, [stored[c] for c in plan.key_columns])


def _row_end(link: Link) -> End:
    return link.start if link.own_end == "start" else link.end


def _held(plan: TablePlan, node: RowNode) -> list[str]:
    """The condition that the node holds a row of the table, not a placeholder other rows'
    relationships made: some property the table never leaves NULL is set (None when the
    table has no such property: then a placeholder cannot be told from a row)."""
    if not any(not plan.outputs[c].nullable for c in node.properties.values()):
        return []
    return ["(" + " OR ".join(f"n.{quoted(p)} IS NOT NULL" for p in node.properties) + ")"]


def _statement(match: str, conditions: list[str], key: list[str]) -> Lookup:
    lines = ["UNWIND $values AS v", match]
    if conditions:
        lines.append("WHERE " + " AND ".join(conditions))
    lines.append(f"RETURN DISTINCT [{', '.join(key)}] AS key")
    return Lookup("\n".join(lines))


# -- values both ways ------------------------------------------------------------------------


def output_of(stream: Stream, plan: TablePlan, source: str) -> str:
    """The output column that is source column ``source`` as read (perhaps renamed)."""
    for name, output in plan.outputs.items():
        if output.origin == source and output.is_plain:
            return name
    raise SinkWriteError(
        f"neo4j sink, table {stream.name}: column {source!r} reaches the graph only "
        "transformed (or not at all), so rows cannot be found by its source values"
    )


def as_source_value(stream: Stream, plan: TablePlan, output: str, value: Any) -> Any:
    """A plain column's graph value as the source reader yields it (VALUE CONTRACT)."""
    if value is None:
        return None
    if hasattr(value, "to_native"):  # neo4j.time Date, DateTime, LocalDateTime
        return value.to_native()
    if type(value).__name__ == "Duration":
        return dt.timedelta(
            days=value.days, seconds=value.seconds, microseconds=value.nanoseconds // 1000
        )
    source_type = stream.column(plan.outputs[output].origin).source_type
    try:
        name = parse_source_type(source_type).name
    except ValueError:
        name = ""
    if name == "decimal":
        return Decimal(str(value))
    if isinstance(value, str) and name in ("bigint", "int", "bit"):
        return int(value)  # an unsigned integer beyond Neo4j's, stored as its digits
    if isinstance(value, bytearray):
        return bytes(value)
    return value
