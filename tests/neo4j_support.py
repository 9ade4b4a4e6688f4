"""Reading the graph back for the sync tests, and stopping/restarting the real Neo4j server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from chariot.config import MySQLSettings, Neo4jSettings
from chariot.connections import neo4j_session
from tests.movielens_project import STREAMS_BY_NAME
from tests.movielens_rules import split_genres, title_year
from tests.sync_support import source_rows

ROOT = Path(__file__).resolve().parents[1]

# What each table looks like in the graph, one tuple per source row (graph model: see
# src/chariot/sinks/neo4j/graph.py).
GRAPH_QUERIES = {
    "movies": "MATCH (m:Movie) WHERE m.title IS NOT NULL "
    "OPTIONAL MATCH (m)-[:IN_GENRE]->(g:Genre) "
    "WITH m, g.name AS genre ORDER BY genre "
    "RETURN m.movieId, m.title, collect(genre), m.year",
    "links": "MATCH (m:Movie) WHERE m.imdbId IS NOT NULL RETURN m.movieId, m.imdbId, m.tmdbId",
    "ratings": "MATCH (u:User)-[r:RATED]->(m:Movie) "
    "RETURN u.userId, m.movieId, r.rating, r.timestamp",
    "tags": "MATCH (u:User)-[t:TAGGED]->(m:Movie) RETURN u.userId, m.movieId, t.tag, t.timestamp",
}


def graph_rows(neo4j: Neo4jSettings, table: str) -> list[tuple[Any, ...]]:
    with neo4j_session(neo4j) as session:
        rows = [tuple(record.values()) for record in session.run(GRAPH_QUERIES[table])]
    return sorted(rows, key=repr)


def expected_graph(table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if table == "movies":
        shaped = [(m, t, sorted(split_genres(g)), title_year(t)) for m, t, g in rows]
    elif table == "ratings":
        shaped = [(u, m, float(r), ts) for u, m, r, ts in rows]
    else:
        shaped = [tuple(row) for row in rows]
    return sorted(shaped, key=repr)


def assert_graph_equals_source(
    mysql: MySQLSettings, neo4j: Neo4jSettings, tables: tuple[str, ...] = tuple(STREAMS_BY_NAME)
) -> None:
    for table in tables:
        expected = expected_graph(table, source_rows(mysql, STREAMS_BY_NAME[table]))
        actual = graph_rows(neo4j, table)
        assert len(actual) == len(expected), (
            f"graph {table}: {len(actual)} rows, source {len(expected)}"
        )
        assert actual == expected, f"graph {table}: rows differ from the source"


def graph_checkpoints(neo4j: Neo4jSettings) -> dict[str, list[Any]]:
    import json

    with neo4j_session(neo4j) as session:
        result = session.run("MATCH (c:ChariotCheckpoint) RETURN c.table, c.highWaterMark")
        return {table: json.loads(mark) for table, mark in result if mark is not None}


def neo4j_pid_file() -> Path:
    services = Path(os.environ.get("CHARIOT_SERVICES_DIR", ROOT / ".services"))
    return services / "neo4j" / "run" / "neo4j.pid"


def kill_neo4j() -> int:
    """SIGKILL the Neo4j server that scripts/services.sh started; returns its pid."""
    pid = int(neo4j_pid_file().read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    return pid


def start_services() -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "up"], check=True, timeout=600, capture_output=True
    )
