"""Promoted summaries -> properties of the nodes of the aggregation's ``label`` in Neo4j.

For each aggregation that names a label (MovieLens: ``movie_stats`` onto ``(:Movie
{movieId})``), keyed by the label's key property: idempotent ``MERGE`` on the key (so a group
whose node is not synced yet still gets its summary; the sync later adds the rest), ``SET``
every statistic under its property name (``rating_count`` -> ``ratingCount``; NULL removes
the property) and ``statsRunId``; then the summary properties are removed from nodes of
the label stamped by an older run (groups that no longer exist). Values are sent as Neo4j
takes them: numbers (``numeric`` as float), lists, temporal values.

After an incremental run only the recomputed groups are written: their nodes get the
summaries' current values, and a group that no longer exists has the summary properties
removed from its node, as the full write's clean-up would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chariot.aggregate import schema
from chariot.aggregate.declared import RUN_PROPERTY, Declared, quoted
from chariot.config import Settings
from chariot.connections import neo4j_driver, postgres_connection
from chariot.errors import AggregationError, ChariotError
from chariot.lease import LeaseOwner
from chariot.progress import ProgressCallback, notify
from chariot.sinks.neo4j.lease import CONSTRAINT as LEASE_CONSTRAINT
from chariot.sinks.neo4j.lease import GraphLease

BATCH_NODES = 5_000


@dataclass(frozen=True)
class GraphWrite:
    nodes_written: int
    nodes_cleared: int
    seconds: float


def labelled(declared: Sequence[Declared]) -> list[Declared]:
    return [d for d in declared if d.label is not None and d.label_key is not None]


def write_graph(
    settings: Settings,
    run_id: int,
    declared: Sequence[Declared],
    progress: ProgressCallback | None = None,
    *,
    groups: dict[str, list[str]] | None = None,
) -> GraphWrite:
    """Write every labelled aggregation's promoted summary onto its nodes, or with
    ``groups`` (aggregation -> group keys as text) only those groups' nodes; raises a
    ``ChariotError``."""
    started = time.perf_counter()
    targets = labelled(declared)
    if not targets:
        return GraphWrite(0, 0, 0.0)
    nodes = _nodes_by_label(settings, targets, groups)
    driver = neo4j_driver(settings.neo4j)  # ConnectionFailed when unreachable
    lease = GraphLease(
        driver,
        settings.neo4j.database,
        LeaseOwner("aggregate"),
        ttl_seconds=settings.run.lease_seconds,
    )
    written = cleared = 0
    try:
        with driver.session(database=settings.neo4j.database) as session:
            for aggregation in targets:
                _ensure_constraint(session, aggregation)
            session.run(LEASE_CONSTRAINT).consume()
            lease.acquire(
                sorted(stats_resource(label) for label in nodes),
                wait_seconds=settings.run.lease_wait_seconds,
            )
            total = sum(len(label.rows) for label in nodes.values())
            task = "summaries -> neo4j"
            notify(progress, task, 0, total, unit="nodes")
            for label, found in nodes.items():
                key, rows, properties = found.key, found.rows, found.properties
                for start in range(0, len(rows), BATCH_NODES):
                    batch = rows[start : start + BATCH_NODES]
                    session.execute_write(_write_batch, label, key, batch, run_id, lease)
                    written += len(batch)
                    notify(progress, task, written, total, unit="nodes")
                if groups is not None:  # only the groups gone lose their properties
                    for start in range(0, len(found.gone), BATCH_NODES):
                        gone = found.gone[start : start + BATCH_NODES]
                        cleared += session.execute_write(
                            _clear_keys, label, key, properties, gone, lease
                        )
                    continue
                while count := session.execute_write(
                    _clear_stale, label, properties, run_id, lease
                ):
                    cleared += count
    except ChariotError:
        raise
    except Exception as error:  # driver errors: one clear line, never a traceback
        raise AggregationError(
            f"writing summaries to Neo4j at {settings.neo4j.display_url()} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        lease.release()
        driver.close()
    return GraphWrite(written, cleared, round(time.perf_counter() - started, 3))


def stats_resource(label: str) -> str:
    """The writer lease of a label's summary properties. Not the label itself: a sync (a
    follower holds its labels for as long as it runs) writes the row properties, the
    write-back only the summary ones, so the two never overwrite each other; two
    aggregations writing the same summaries still exclude each other."""
    return f"{label} summaries"


def _ensure_constraint(session: Any, declared: Declared) -> None:
    """A uniqueness constraint on the label's key (named as the Neo4j sink names it, so the
    two never create duplicates)."""
    label, key = str(declared.label), str(declared.label_key)
    session.run(
        f"CREATE CONSTRAINT {constraint_name(label, key)} IF NOT EXISTS "
        f"FOR (n:{cypher_name(label)}) REQUIRE n.{cypher_name(key)} IS UNIQUE"
    ).consume()


def constraint_name(label: str, key: str) -> str:
    """``chariot_movie_id`` for (Movie, movieId), ``chariot_genre_name`` for (Genre, name)."""
    label_part, key_part = _snake(label), _snake(key)
    if key_part.startswith(label_part + "_"):
        return f"chariot_{key_part}"
    return f"chariot_{label_part}_{key_part}"


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower())


def cypher_name(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"`{name.replace('`', '``')}`"


@dataclass(frozen=True)
class _LabelNodes:
    key: str  # the label's key property
    rows: list[dict[str, Any]]  # {key, props} to MERGE and SET
    properties: list[str]  # every summary property of the label
    gone: list[Any] = field(default_factory=list)  # keys whose groups no longer exist


def _nodes_by_label(
    settings: Settings, targets: list[Declared], groups: dict[str, list[str]] | None
) -> dict[str, _LabelNodes]:
    """What to write per label: every group of its summaries, or only ``groups``.

    A node gets the properties of every aggregation onto its label, NULL (removed) for one
    that has no group for it: several aggregations can share a label without leaving an
    old value of one of them behind on a node the other still writes."""
    labels: dict[str, _LabelNodes] = {}
    for label in dict.fromkeys(str(d.label) for d in targets):
        mine = [d for d in targets if d.label == label]
        properties = [str(s.node_property) for d in mine for s in d.statistics if s.node_property]
        keys = None
        if groups is not None:
            keys = sorted({key for d in mine for key in groups.get(d.name, [])})
        merged: dict[Any, dict[str, Any]] = {}
        wanted: set[Any] = set()
        with postgres_connection(settings.postgres) as connection:
            for aggregation in mine:
                for row in _read_summary(connection, settings, aggregation, keys):
                    props = merged.setdefault(row["key"], dict.fromkeys(properties))
                    props.update(row["props"])
                if keys is not None:
                    wanted |= set(_typed_keys(connection, aggregation, keys))
        rows = [{"key": key, "props": props} for key, props in merged.items()]
        gone = sorted(wanted - merged.keys(), key=repr)
        labels[label] = _LabelNodes(str(mine[0].label_key), rows, properties, gone)
    return labels


def _typed_keys(connection: Any, declared: Declared, keys: list[str]) -> list[Any]:
    """Group keys in their text form, as the values Neo4j holds."""
    rows = connection.execute(
        f"SELECT unnest(%s::text[]::{declared.group_postgres}[])", (keys,)
    ).fetchall()
    return [neo4j_value(row[0]) for row in rows]


def _read_summary(
    connection: Any, settings: Settings, declared: Declared, keys: list[str] | None
) -> list[dict[str, Any]]:
    """The promoted summary (or its groups ``keys``) as rows of the driver's values:
    {key, props}."""
    columns = [quoted(s.column) for s in declared.statistics]
    summary = schema.qualified(settings.postgres.schema_name, declared.name)
    group = quoted(declared.group_column)
    query = f"SELECT {group}, {', '.join(columns)} FROM {summary}"
    if keys is not None:
        query += f" WHERE {group} = ANY(%s::text[]::{declared.group_postgres}[])"
    rows = connection.execute(query, () if keys is None else (keys,)).fetchall()
    return [
        {
            "key": neo4j_value(row[0]),
            "props": {
                str(s.node_property): neo4j_value(value)
                for s, value in zip(declared.statistics, row[1:], strict=True)
                if s.node_property
            },
        }
        for row in rows
    ]


def neo4j_value(value: Any) -> Any:
    """A summary value as Neo4j stores it (``numeric`` becomes a float)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [neo4j_value(item) for item in value]
    return value


def _write_batch(
    tx: Any, label: str, key: str, batch: list[dict[str, Any]], run_id: int, lease: GraphLease
) -> None:
    lease.check(tx, [stats_resource(label)])
    tx.run(
        f"UNWIND $rows AS row MERGE (n:{cypher_name(label)} "
        f"{{{cypher_name(key)}: row.key}}) "
        f"SET n += row.props, n.{RUN_PROPERTY} = $runId",
        rows=batch,
        runId=run_id,
    ).consume()


def _clear_stale(tx: Any, label: str, properties: list[str], run_id: int, lease: GraphLease) -> int:
    lease.check(tx, [stats_resource(label)])
    removed = ", ".join(f"n.{cypher_name(name)}" for name in [*properties, RUN_PROPERTY])
    record = tx.run(
        f"MATCH (n:{cypher_name(label)}) WHERE n.{RUN_PROPERTY} IS NOT NULL "
        f"AND n.{RUN_PROPERTY} <> $runId "
        f"WITH n LIMIT {BATCH_NODES} REMOVE {removed} RETURN count(n) AS cleared",
        runId=run_id,
    ).single()
    return int(record["cleared"]) if record else 0


def _clear_keys(
    tx: Any, label: str, key: str, properties: list[str], keys: list[Any], lease: GraphLease
) -> int:
    """Remove the summary properties from the nodes of groups that no longer exist."""
    lease.check(tx, [stats_resource(label)])
    removed = ", ".join(f"n.{cypher_name(name)}" for name in [*properties, RUN_PROPERTY])
    record = tx.run(
        f"UNWIND $keys AS k MATCH (n:{cypher_name(label)} {{{cypher_name(key)}: k}}) "
        f"WHERE n.{RUN_PROPERTY} IS NOT NULL REMOVE {removed} RETURN count(n) AS cleared",
        keys=keys,
    ).single()
    return int(record["cleared"]) if record else 0
