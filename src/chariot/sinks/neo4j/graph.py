"""How a table maps onto the graph: everything generated from the project's ``[graph]``.

``graph_mapping(stream)`` resolves what the table writes (``plan.py``), generates its
Cypher (``statements.py``) and the per-batch parameters (``parameters.py``) once; the
sink caches the result per stream. Only Chariot's own bookkeeping (checkpoints, rejects,
change-capture log positions) is spelled out here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chariot.batch import Key
from chariot.errors import ConfigError, SinkWriteError
from chariot.keys import key_from_json, key_to_json
from chariot.sinks.neo4j.lease import CONSTRAINT as LEASE_CONSTRAINT
from chariot.sinks.neo4j.parameters import BatchParameters, Prepared, Rows
from chariot.sinks.neo4j.plan import TablePlan, table_plan
from chariot.sinks.neo4j.statements import Statements, constraint
from chariot.streams import Stream

BOOKKEEPING_CONSTRAINTS = (
    "CREATE CONSTRAINT chariot_checkpoint_table IF NOT EXISTS "
    "FOR (c:ChariotCheckpoint) REQUIRE c.table IS UNIQUE",
    "CREATE CONSTRAINT chariot_reject_key IF NOT EXISTS "
    "FOR (r:ChariotReject) REQUIRE (r.table, r.key) IS UNIQUE",
    "CREATE CONSTRAINT chariot_log_position_table IF NOT EXISTS "
    "FOR (p:ChariotLogPosition) REQUIRE p.table IS UNIQUE",
    LEASE_CONSTRAINT,
)

WRITE_CHECKPOINT = """
MERGE (c:ChariotCheckpoint {table: $table})
SET c.highWaterMark = $high_water_mark,
    c.rowsWritten = coalesce(c.rowsWritten, 0) + $rows_written,
    c.updatedAt = datetime()
"""

WRITE_REJECTS = """
UNWIND $rejects AS reject
MERGE (r:ChariotReject {table: reject[0], key: reject[1]})
SET r.reason = reject[2], r.lastSeen = datetime()
"""


# The proof that lets ``write`` and ``apply`` CREATE (``proof.py``): ``newAbove`` on a
# table's checkpoint node says no relationship the table makes exists for a key above its
# ``highWaterMark`` and its ``logMark`` (for any key, while there is neither).
READ_NEW_ABOVE = """
OPTIONAL MATCH (c:ChariotCheckpoint {table: $table})
RETURN c.highWaterMark AS mark, c.logMark AS log_mark,
       coalesce(c.newAbove, false) AS new_above
"""

# Change capture CREATEd rows up to this key (in the transaction that did).
WRITE_LOG_MARK = "MATCH (c:ChariotCheckpoint {table: $table}) SET c.logMark = $mark"

MARK_NEW_ABOVE = "MERGE (c:ChariotCheckpoint {table: $table}) SET c.newAbove = true"

CLEAR_NEW_ABOVE = """
UNWIND $tables AS table
MATCH (c:ChariotCheckpoint {table: table}) WHERE c.newAbove IS NOT NULL
REMOVE c.newAbove
"""


def encode_key(key: Sequence[Any]) -> str:
    """A key tuple as the JSON list stored in checkpoints and rejects (``[1,31]``)."""
    return key_to_json(key, compact=True)


def decode_key(text: str) -> Key:
    return key_from_json(text)


# Change capture: the recorded rejects of keys that were deleted or now load.
CLEAR_REJECTS = """
UNWIND $keys AS key
MATCH (r:ChariotReject {table: $table, key: key})
DELETE r
"""

# Whether a table has any recorded reject (read in the transaction that would clear them;
# ``key IS NOT NULL`` lets the planner seek the (table, key) constraint's index).
ANY_REJECTS = (
    "RETURN EXISTS { MATCH (r:ChariotReject) WHERE r.table = $table AND r.key IS NOT NULL }"
    " AS recorded"
)

# Where change capture has reached, per table (``LogPosition.render()`` text), and when the
# last transaction it covers committed in the source.
WRITE_LOG_POSITIONS = """
UNWIND $tables AS table
MERGE (p:ChariotLogPosition {table: table})
SET p.position = $position, p.committedAt = $committed_at, p.updatedAt = datetime()
"""

READ_LOG_POSITIONS = "MATCH (p:ChariotLogPosition) RETURN p.table AS table, p.position AS position"

# ``copied``: the table's copy finished after its position was stored (``log_copied``). A new
# position (a copy starting) and a wipe of the table's rows (full refresh) remove it.
MARK_COPIED = "MATCH (p:ChariotLogPosition {table: $table}) SET p.copied = true"
CLEAR_COPIED = "MATCH (p:ChariotLogPosition {table: $table}) REMOVE p.copied"
READ_COPIED = "MATCH (p:ChariotLogPosition) WHERE p.copied RETURN p.table AS table"

FORGET_LOG_POSITION = "MATCH (p:ChariotLogPosition {table: $table}) DELETE p"


@dataclass(frozen=True)
class GraphMapping:
    """Everything the sink needs to know about one table in the graph."""

    plan: TablePlan
    write: str | None  # None: the table makes nothing in the graph (only its checkpoint)
    # For rows proven new (``Neo4jSink.write``): the distinct-node MERGEs (statement,
    # parameter) that run first, then ``write_new``; None when the table makes no relationship.
    node_merges: tuple[tuple[str, str], ...]
    write_new: str | None
    # Whether the graph holds any relationship the table makes (returns ``made``).
    any_made: str | None
    # The labels and relationship types the table writes: its writer lease covers them.
    resources: tuple[str, ...]
    constraints: tuple[str, ...]  # one uniqueness constraint per label on its key
    parameters: Callable[[Rows], Prepared]
    # Deletes by key (audit --repair), each taking $keys; the first counts the rows.
    deletes: tuple[str, ...]
    # Relationship types the deletes cannot find by key (see ``Statements.undeletable``).
    undeletable: tuple[str, ...]
    refresh: Callable[[int], tuple[str, ...]]
    graph_keys: Callable[[list[list[object]]], list[list[object]]]
    # (output columns, their source values) -> the values as the graph holds them.
    convert: Callable[[Sequence[str], Sequence[Any]], list[Any]]
    # Output column -> the name of its list parameter in ``write``.
    column_parameters: dict[str, str]
    # ``write`` after ``node_merges`` for tables of free relationships only (change
    # capture's upserts: ``Statements.write_matched``); None: ``write`` it is.
    write_matched: str | None = None
    # For the same tables: SET the properties of relationships that exist, returning
    # ``found`` (``Statements.write_updated``); change capture's in-place updates.
    write_updated: str | None = None


def graph_mapping(stream: Stream) -> GraphMapping:
    """The mapping of ``stream``'s table, from ``stream.project`` (which it must carry)."""
    if stream.project is None:
        raise SinkWriteError(
            f"neo4j sink: table {stream.name!r} comes with no project (a bug: streams are "
            "built by chariot.project.streams)"
        )
    try:
        plan = table_plan(stream.project, stream.name)
    except ConfigError as error:
        raise SinkWriteError(f"neo4j sink, table {stream.name}: {error}") from None
    statements = Statements(plan)
    parameters = BatchParameters(plan, statements, stream.source_columns)
    return GraphMapping(
        plan=plan,
        write=statements.write(),
        node_merges=statements.node_merges(),
        write_new=statements.write_new(),
        any_made=statements.any_made(),
        resources=plan.resources,
        constraints=tuple(constraint(label) for label in plan.labels.values()),
        parameters=parameters,
        deletes=statements.deletes(),
        undeletable=statements.undeletable(),
        refresh=statements.refresh,
        graph_keys=parameters.graph_keys,
        convert=parameters.output_values,
        column_parameters=dict(statements.param),
        write_matched=statements.write_matched(),
        write_updated=statements.write_updated(),
    )
