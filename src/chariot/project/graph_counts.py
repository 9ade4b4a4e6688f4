"""How many of a table's rows the graph holds, as one Cypher count (for ``chariot status``).

A table's rows are what it makes in the graph: the nodes of the label it backs (or extends)
that carry a property it owns — placeholders made by other tables' relationships carry
only their key — else the relationships it makes.
"""

from __future__ import annotations

from chariot.project.graph import table_properties
from chariot.project.outputs import key_outputs
from chariot.streams import Stream


def graph_count_query(stream: Stream) -> str | None:
    """The Cypher counting ``stream``'s rows in the graph; None: the table makes nothing."""
    project = stream.project
    if project is None:
        return None
    table = project.tables[stream.name]
    outputs = [output.name for output in stream.outputs]
    for label, node in project.graph.nodes.items():
        if node.table == stream.name:
            owned = table_properties(node, outputs, key_outputs(table))
            return _nodes(label, list(owned))
        for extension in node.extended_by:
            if extension.table == stream.name:
                return _nodes(label, list(extension.properties))
    for relationship in project.graph.relationships:
        if relationship.table == stream.name:
            return f"MATCH ()-[r:`{relationship.type}`]->() RETURN count(r)"
    return None


def _nodes(label: str, properties: list[str]) -> str:
    owned = " OR ".join(f"n.`{name}` IS NOT NULL" for name in properties)
    where = f" WHERE {owned}" if owned else ""
    return f"MATCH (n:`{label}`){where} RETURN count(n)"
