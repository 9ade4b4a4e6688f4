"""One table's share of a change-capture batch, as the statements the Neo4j sink runs.

Everything is computed before the transaction opens (conversions, rejects), so the
transaction itself is a few UNWIND statements per table: the mapping's delete statements
(the ones ``audit --repair`` uses: what a row made, and the nodes only it kept), its write
statement (which drops the relationships a re-written row no longer makes), and the reject
bookkeeping. The graph after a batch is the graph a first load of the new rows would build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chariot.batch import Key, Reject
from chariot.cdc.changes import TableChanges
from chariot.sinks.neo4j import graph
from chariot.sinks.neo4j.parameters import CONVERSION_ERRORS, Prepared

if TYPE_CHECKING:
    from neo4j import ManagedTransaction


@dataclass
class TableWork:
    table: str
    mapping: graph.GraphMapping
    deletes: list[list[Any]]  # graph keys whose rows go (deleted, moved away, now rejected)
    prepared: Prepared  # the upserts Neo4j can store
    rejects: list[Reject] = field(default_factory=list)  # recorded, after their rows went
    cleared: list[Key] = field(default_factory=list)  # keys whose recorded rejects go

    @property
    def changes(self) -> int:
        return len(self.deletes) + self.prepared.rows + len(self.rejects)


def table_work(changes: TableChanges, mapping: graph.GraphMapping) -> TableWork:
    stream = changes.stream
    positions = stream.key_positions
    prepared = mapping.parameters(changes.upserts)
    refused = {index for index, _ in prepared.rejected}
    rejects = [
        *changes.rejects,
        *(
            Reject(stream.name, tuple(changes.upserts[index][p] for p in positions), reason)
            for index, reason in prepared.rejected
        ),
    ]
    loaded = [
        tuple(row[p] for p in positions)
        for index, row in enumerate(changes.upserts)
        if index not in refused
    ]
    gone = list(dict.fromkeys([*changes.deletes, *(reject.key for reject in rejects)]))
    return TableWork(
        table=stream.name,
        mapping=mapping,
        deletes=_graph_keys(mapping, gone),
        prepared=prepared,
        rejects=rejects,
        cleared=[*changes.deletes, *loaded],
    )


def _graph_keys(mapping: graph.GraphMapping, keys: Sequence[Key]) -> list[list[Any]]:
    """The keys as the graph holds them; a key no graph value can hold was never stored."""
    try:
        return mapping.graph_keys([list(key) for key in keys])
    except CONVERSION_ERRORS:
        pass
    converted = []
    for key in keys:
        try:
            converted += mapping.graph_keys([list(key)])
        except CONVERSION_ERRORS:
            continue
    return converted


def delete_rows(tx: ManagedTransaction, work: TableWork) -> None:
    if not work.deletes:
        return
    for statement in work.mapping.deletes:
        tx.run(statement, keys=work.deletes).consume()


def write_rows(tx: ManagedTransaction, work: TableWork) -> None:
    mapping, prepared = work.mapping, work.prepared
    if not prepared.rows:
        return
    if mapping.write_matched is not None:
        # Each end node MERGEd once per distinct key, not once per row (measured on
        # ratings: the per-row MERGE of both ends was most of the statement's time).
        for statement, parameter in mapping.node_merges:
            tx.run(statement, {parameter: prepared.distinct[parameter]}).consume()
        tx.run(mapping.write_matched, prepared.parameters).consume()
    elif mapping.write is not None:
        tx.run(mapping.write, prepared.parameters).consume()


def record_rejects(tx: ManagedTransaction, work: TableWork) -> None:
    # Most tables have no recorded reject: one look saves encoding and matching every key.
    if work.cleared and tx.run(graph.ANY_REJECTS, table=work.table).single(strict=True)[0]:
        keys = [graph.encode_key(key) for key in work.cleared]
        tx.run(graph.CLEAR_REJECTS, table=work.table, keys=keys).consume()
    if work.rejects:
        rows = [[r.table, graph.encode_key(r.key), r.reason] for r in work.rejects]
        tx.run(graph.WRITE_REJECTS, rejects=rows).consume()
