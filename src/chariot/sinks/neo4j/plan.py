"""What one table writes into the graph, resolved from the project's ``[graph]``.

A row of a table may make:

* its own node, when a label is backed by the table (``Film`` from ``film``), and the node
  of each label the table extends (MovieLens' ``links`` adds to ``Movie``): both keyed by
  the row's key, both "this row's nodes";
* value-keyed nodes from its columns (``Genre`` from ``movies.genres``);
* one relationship (or one per list element) per relationship type the table makes.

Every column here is an output column of the table (after its transforms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chariot.errors import ConfigError
from chariot.project.graph import (
    Endpoint,
    NodeLabel,
    Relationship,
    property_name,
    table_properties,
)
from chariot.project.model import Project
from chariot.project.outputs import OutputColumn, key_outputs, table_outputs


@dataclass(frozen=True)
class Label:
    """A node label as every table sees it."""

    name: str
    key: tuple[str, ...]  # key property names
    value_keyed: bool
    # Properties that only rows of the label's table or its extensions write: a node with
    # none of them and no relationship is a placeholder nobody needs.
    owned: tuple[str, ...] = ()
    # Whether "none of ``owned``" tells a placeholder from a row exactly: the table and
    # every extension write at least one property that is never NULL.
    placeholder_exact: bool = False


@dataclass(frozen=True)
class RowNode:
    """A node keyed by the row's key: the label's own table row, or an extension."""

    label: Label
    columns: tuple[str, ...]  # the table's key output columns, in the label's key order
    properties: dict[str, str]  # property -> output column
    own: bool  # backed by this table (not an extension)
    # Properties other tables (extensions, or the label's table) own on the same node.
    others: tuple[str, ...] = ()


@dataclass(frozen=True)
class End:
    """One end of a relationship: a label and the columns holding its key."""

    label: Label
    columns: tuple[str, ...]
    row_node: int | None  # index into ``TablePlan.nodes`` when it is this row's node


@dataclass(frozen=True)
class Link:
    """A relationship type this table makes."""

    type: str
    start: End
    end: End
    properties: dict[str, str]  # property -> output column
    identity: tuple[str, ...]  # property names that are part of the relationship's identity

    @property
    def own_end(self) -> str | None:
        """``"start"`` / ``"end"``: the end that is this row's node (the row owns every
        relationship of this type there), or None."""
        if self.start.row_node is not None:
            return "start"
        if self.end.row_node is not None:
            return "end"
        return None


@dataclass(frozen=True)
class Feed:
    """A value-keyed label fed by a column of this table."""

    label: Label
    column: str


@dataclass(frozen=True)
class TablePlan:
    table: str
    outputs: dict[str, OutputColumn]
    key_columns: tuple[str, ...]  # output names of the key, in key order
    nodes: tuple[RowNode, ...] = ()
    links: tuple[Link, ...] = ()
    feeds: tuple[Feed, ...] = ()
    labels: dict[str, Label] = field(default_factory=dict)  # every label the table writes

    @property
    def resources(self) -> tuple[str, ...]:
        """Labels and relationship types the table writes (its writer lease covers them)."""
        return (*self.labels, *dict.fromkeys(link.type for link in self.links))

    def is_empty(self) -> bool:
        return not (self.nodes or self.links or self.feeds)


def table_plan(project: Project, table: str) -> TablePlan:
    """The graph writes of ``table`` (raises ``ConfigError`` for what cannot be mapped)."""
    labels = project_labels(project)
    outputs = {column.name: column for column in table_outputs(project.tables[table])}
    keys = key_outputs(project.tables[table])
    nodes = _row_nodes(project, table, labels, outputs, keys)
    links = tuple(
        _link(labels, nodes, relationship)
        for relationship in project.graph.relationships
        if relationship.table == table
    )
    feeds = tuple(
        Feed(labels[name], column)
        for name, label in project.graph.nodes.items()
        for reference in label.values
        for source, _, column in [reference.partition(".")]
        if source == table
    )
    for link in links:
        for end in (link.start, link.end):
            if len(end.columns) > 1 and any(outputs[c].is_list for c in end.columns):
                raise ConfigError(
                    f"graph relationship {link.type} of table {table!r}: a list column "
                    "cannot be part of a composite key"
                )
    touched = [n.label.name for n in nodes] + [f.label.name for f in feeds]
    touched += [end.label.name for link in links for end in (link.start, link.end)]
    return TablePlan(
        table=table,
        outputs=outputs,
        key_columns=keys,
        nodes=nodes,
        links=links,
        feeds=feeds,
        labels={name: labels[name] for name in dict.fromkeys(touched)},
    )


def project_labels(project: Project) -> dict[str, Label]:
    return {name: _label(project, name, label) for name, label in project.graph.nodes.items()}


def label_key(project: Project, label: NodeLabel) -> tuple[str, ...]:
    """A label's key property names; default: its table's key output columns' names."""
    if label.key or label.table is None:
        return tuple(label.key)
    return tuple(property_name(c) for c in key_outputs(project.tables[label.table]))


def _label(project: Project, name: str, label: NodeLabel) -> Label:
    key = label_key(project, label)
    if label.table is None:
        return Label(name, key, value_keyed=True)
    owned: list[str] = []
    exact = True
    for table, properties in _contributions(project, label):
        owned += properties
        outputs = {column.name: column for column in table_outputs(project.tables[table])}
        exact = exact and any(not outputs[column].nullable for column in properties.values())
    return Label(name, key, False, tuple(dict.fromkeys(owned)), exact)


def _contributions(project: Project, label: NodeLabel) -> list[tuple[str, dict[str, str]]]:
    """(table, its properties on the label's nodes): the label's table, then extensions."""
    assert label.table is not None
    table = project.tables[label.table]
    own = table_properties(label, [c.name for c in table_outputs(table)], key_outputs(table))
    return [(label.table, dict(own))] + [
        (extension.table, dict(extension.properties)) for extension in label.extended_by
    ]


def _row_nodes(
    project: Project,
    table: str,
    labels: dict[str, Label],
    outputs: dict[str, OutputColumn],
    keys: tuple[str, ...],
) -> tuple[RowNode, ...]:
    nodes: list[RowNode] = []
    for name, label in project.graph.nodes.items():
        if label.table is None:
            continue
        contributions = _contributions(project, label)
        for position, (source, properties) in enumerate(contributions):
            if source != table:
                continue
            others = [
                p for i, (_, props) in enumerate(contributions) if i != position for p in props
            ]
            nodes.append(
                RowNode(labels[name], keys, properties, own=position == 0, others=tuple(others))
            )
    return tuple(nodes)


def _link(labels: dict[str, Label], nodes: tuple[RowNode, ...], relationship: Relationship) -> Link:
    start = _end(labels, nodes, relationship.from_)
    end = _end(labels, nodes, relationship.to)
    if start.row_node is not None and end.row_node is not None:
        # A loop from a row's node to itself: the start is the row's node.
        end = End(end.label, end.columns, None)
    return Link(
        relationship.type,
        start,
        end,
        dict(relationship.properties),
        tuple(relationship.identity),
    )


def _end(labels: dict[str, Label], nodes: tuple[RowNode, ...], endpoint: Endpoint) -> End:
    columns = tuple(endpoint.key)
    for index, node in enumerate(nodes):
        if node.label.name == endpoint.label and node.columns == columns:
            return End(labels[endpoint.label], columns, index)
    return End(labels[endpoint.label], columns, None)
