"""The audit on a schema it was never written for (issue #10 item 6): Sakila, made a project
with `chariot init`, synced, audited clean; then the source is changed (updates, deletes,
inserts) and the audit names exactly the rows that changed, per sink, and `--repair`
makes a second audit clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chariot.audit import AuditOptions, run_audit
from chariot.audit.report import AuditReport
from chariot.config import Settings
from chariot.project import load_project
from chariot.project.init import init_project
from chariot.project.streams import project_streams
from chariot.streams import Stream
from chariot.sync import sync
from tests.audit_support import differences, mysql
from tests.sakila import load_sakila

pytestmark = pytest.mark.integration

FILMS = (1, 2, 3)
PAYMENT = 1


def sakila_project(settings: Settings, directory: Path) -> tuple[Stream, ...]:
    load_sakila(settings.mysql)
    path = directory / "chariot.toml"
    init_project(settings, path=path)
    return project_streams(load_project(path))


def audit(settings: Settings, streams: tuple[Stream, ...], sinks: list[str], **more: Any) -> Any:
    options = AuditOptions(streams=streams, sinks=tuple(sinks), summaries=False, **more)
    return run_audit(settings, options)


def changed_keys(report: AuditReport, sink: str) -> dict[str, dict[str, list[list[Any]]]]:
    """table -> kind -> keys, for the differing tables of one sink."""
    found: dict[str, dict[str, list[list[Any]]]] = {}
    for result in report.results:
        if result.sink == sink and not result.clean:
            kinds = found.setdefault(result.table, {})
            for example in result.examples:
                kinds.setdefault(example.kind, []).append(example.key)
    return {table: {k: sorted(v) for k, v in kinds.items()} for table, kinds in found.items()}


def mutate(settings: Settings) -> dict[str, dict[str, list[list[Any]]]]:
    """Change the source; returns table -> kind -> keys the audit must name."""
    run = settings.mysql
    for film in FILMS:
        mysql(run, "UPDATE film SET title = CONCAT(title, ' II') WHERE film_id = %s", (film,))
    mysql(run, "UPDATE payment SET amount = amount + 1 WHERE payment_id = %s", (PAYMENT,))
    # Every Sakila rental has its payment: the last two rentals lose theirs first, so that
    # nothing refers to them when they go (no orphan, no ON DELETE SET NULL).
    rentals = [row[0] for row in _rows(settings, "SELECT MAX(rental_id) FROM rental")]
    rentals = [rentals[0] - 1, rentals[0]]
    payments = [
        row[0]
        for rental in rentals
        for row in _rows(settings, f"SELECT payment_id FROM payment WHERE rental_id = {rental}")
    ]
    assert payments and PAYMENT not in payments
    for rental in rentals:
        mysql(run, "DELETE FROM payment WHERE rental_id = %s", (rental,))
        mysql(run, "DELETE FROM rental WHERE rental_id = %s", (rental,))
    mysql(run, "DELETE FROM film_actor WHERE actor_id = 1 AND film_id = 1")
    mysql(run, "INSERT INTO actor (actor_id, first_name, last_name) VALUES (201, 'ADA', 'NEW')")
    mysql(run, "INSERT INTO film_actor (actor_id, film_id) VALUES (201, 5)")
    films = [[film] for film in FILMS]
    return {
        "film": {"differing": films},
        # Sakila's own trigger copies every title change into film_text.
        "film_text": {"differing": films},
        "payment": {"differing": [[PAYMENT]], "extra": sorted([p] for p in payments)},
        "rental": {"extra": [[rental] for rental in rentals]},
        "actor": {"missing": [[201]]},
        "film_actor": {"extra": [[1, 1]], "missing": [[201, 5]]},
    }


def _rows(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    from chariot.connections import mysql_connect

    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _column(settings: Settings, statement: str) -> list[Any]:
    return [row[0] for row in _rows(settings, statement)]


def _audit_mutate_repair(settings: Settings, streams: tuple[Stream, ...], sinks: list[str]) -> None:
    # keyset: the source changes below are differences, not rows in flight
    result = sync(settings, sinks=sinks, streams=streams, mode="keyset")
    assert result.ok, result.failures
    clean = audit(settings, streams, sinks)
    assert differences(clean) == {}, [r.examples for r in clean.results if not r.clean]
    assert not clean.orphans

    expected = mutate(settings)
    found = audit(settings, streams, sinks)
    for sink in sinks:
        assert changed_keys(found, sink) == expected, sink
    assert not found.orphans

    repaired = audit(settings, streams, sinks, repair=True)
    assert repaired.repair is not None
    assert differences(repaired, after_repair=True) == {}
    assert audit(settings, streams, sinks).clean


def test_sakila_postgres_audit_names_exactly_the_changed_rows_and_repair_cleans(
    sql_settings: Settings, tmp_path: Path
) -> None:
    _audit_mutate_repair(sql_settings, sakila_project(sql_settings, tmp_path), ["postgres"])


def test_sakila_neo4j_audit_names_exactly_the_changed_rows_and_repair_cleans(
    settings: Settings, tmp_path: Path
) -> None:
    _audit_mutate_repair(settings, sakila_project(settings, tmp_path), ["postgres", "neo4j"])


def _in_flight_keys(report: AuditReport, sink: str) -> dict[str, set[tuple[Any, ...]]]:
    found: dict[str, set[tuple[Any, ...]]] = {}
    for result in report.results:
        if result.sink == sink and result.in_flight:
            found[result.table] = {tuple(e.key) for e in result.in_flight_examples}
    return found


def test_sakila_changes_after_a_change_capture_sync_are_in_flight_with_their_cascades(
    settings: Settings, tmp_path: Path
) -> None:
    """A sink that syncs by change capture and has not applied the latest changes yet: the
    changed rows, and the rows the source's ON UPDATE CASCADE / ON DELETE SET NULL changed
    with them (not in the log), are in flight; damage done to the sink stays a difference."""
    from tests.audit_support import postgres

    sinks = ["postgres", "neo4j"]
    streams = sakila_project(settings, tmp_path)
    synced = sync(settings, sinks=sinks, streams=streams, mode="cdc")
    assert synced.ok and synced.mode == "cdc", synced.failures
    run = settings.mysql
    actors = _column(settings, "SELECT actor_id FROM film_actor WHERE film_id = 10")
    categories = _column(settings, "SELECT category_id FROM film_category WHERE film_id = 10")
    copies = _column(settings, "SELECT inventory_id FROM inventory WHERE film_id = 10")
    rental, payment = _rows(
        settings, "SELECT rental_id, payment_id FROM payment WHERE rental_id IS NOT NULL LIMIT 1"
    )[0]
    assert actors and categories and copies
    mysql(run, "UPDATE film SET film_id = 9001 WHERE film_id = 10")  # ON UPDATE CASCADE
    mysql(run, "DELETE FROM rental WHERE rental_id = %s", (rental,))  # payment: SET NULL
    postgres(settings.postgres, "UPDATE {s}.actor SET first_name = 'DAMAGED' WHERE actor_id = 7")

    found = audit(settings, streams, sinks, examples=100)

    assert differences(found) == {("actor", "postgres"): (0, 0, 1)}
    for sink in sinks:
        flying = _in_flight_keys(found, sink)
        assert {(10,), (9001,)} <= flying["film"], sink
        assert {(a, 10) for a in actors} | {(a, 9001) for a in actors} <= flying["film_actor"]
        assert {(10, c) for c in categories} | {(9001, c) for c in categories} <= flying[
            "film_category"
        ]
        assert {(i,) for i in copies} <= flying["inventory"], sink
        assert (rental,) in flying["rental"] and (payment,) in flying["payment"], sink
    assert found.in_flight > 0 and not found.clean

    caught_up = sync(settings, sinks=sinks, streams=streams)
    assert caught_up.ok, caught_up.failures
    after = audit(settings, streams, sinks)
    assert differences(after) == {("actor", "postgres"): (0, 0, 1)} and after.in_flight == 0


# -- a small schema of awkward types, both sinks -------------------------------------------------

ODD_SCHEMA = (
    "CREATE TABLE kinds (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)",
    "CREATE TABLE things (id INT PRIMARY KEY, kind_id INT NULL, at DATETIME NULL,"
    " stamp TIMESTAMP NULL DEFAULT NULL, active TINYINT(1) NOT NULL,"
    " tags SET('red','green','blue') NOT NULL DEFAULT '', price DECIMAL(8,3) NULL,"
    " raw BLOB NULL, span TIME NULL, doc JSON NULL, big BIGINT UNSIGNED NULL,"
    " FOREIGN KEY (kind_id) REFERENCES kinds (id))",
    "CREATE TABLE parts (thing_id INT NOT NULL, line INT NOT NULL, qty INT NOT NULL,"
    " PRIMARY KEY (thing_id, line), FOREIGN KEY (thing_id) REFERENCES things (id))",
    ("INSERT INTO kinds VALUES (%s, %s)", [(1, "plain"), (2, "odd")]),
    (
        "INSERT INTO things VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                1,
                1,
                "2024-02-29 23:59:59",
                "2038-01-19 03:14:07",
                1,
                "red,blue",
                "-0.001",
                b"\x00\xff",
                "-838:59:59",
                '{"b": 1, "a": [1.50, "x"]}',
                18446744073709551615,
            ),
            (2, None, None, None, 0, "", None, None, None, None, None),
            (
                3,
                2,
                "1000-01-01 00:00:00",
                "1970-01-01 00:00:01",
                1,
                "green",
                "12345.678",
                b"",
                "00:00:00",
                "[]",
                0,
            ),
            (
                4,
                2,
                "9999-12-31 23:59:59",
                "2000-06-15 12:00:00",
                0,
                "red,green,blue",
                "0.000",
                b"\x89PNG",
                "838:59:59",
                '{"k": null}',
                1,
            ),
            (5, 1, "2001-01-01 00:00:00", None, 1, "blue", "1.500", b"x", "12:34:56", '"text"', 42),
        ],
    ),
    (
        "INSERT INTO parts VALUES (%s, %s, %s)",
        [(1, 1, 2), (1, 2, -1), (3, 1, 0), (5, 7, 2147483647)],
    ),
)


def test_awkward_types_compare_exactly_in_both_sinks_and_damage_is_found(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.audit_support import cypher, postgres
    from tests.sync_support import mysql_execute

    mysql_execute(settings.mysql, *ODD_SCHEMA)
    path = tmp_path / "chariot.toml"
    init_project(settings, path=path)
    project = load_project(path)
    streams = project_streams(project)
    assert project.tables["things"].columns["active"].postgres == "boolean"
    sinks = ["postgres", "neo4j"]
    assert sync(settings, sinks=sinks, streams=streams).ok
    clean = audit(settings, streams, sinks)
    assert differences(clean) == {}, [r.examples for r in clean.results if not r.clean]

    postgres(
        settings.postgres, "UPDATE {s}.things SET stamp = stamp + interval '1 second' WHERE id = 1"
    )
    postgres(settings.postgres, "UPDATE {s}.things SET active = NOT active WHERE id = 2")
    postgres(settings.postgres, "UPDATE {s}.things SET tags = ARRAY['blue', 'green'] WHERE id = 4")
    postgres(settings.postgres, "UPDATE {s}.things SET doc = %s WHERE id = 4", ('{"k": 0}',))
    postgres(
        settings.postgres,
        "UPDATE {s}.things SET span = span + interval '1 microsecond' WHERE id = 5",
    )
    postgres(settings.postgres, "DELETE FROM {s}.parts WHERE thing_id = 1 AND line = 2")
    label = next(n for n, node in project.graph.nodes.items() if node.table == "things")
    parts = next(n for n, node in project.graph.nodes.items() if node.table == "parts")
    cypher(settings, f"MATCH (n:{label} {{id: 1}}) SET n.price = n.price + 0.0001")
    cypher(settings, f"MATCH (n:{label} {{id: 3}}) SET n.raw = [1]")
    cypher(settings, f"MATCH (n:{label} {{id: 4}}) SET n.big = '2'")
    cypher(settings, f"MATCH (n:{label} {{id: 5}}) SET n.at = n.at + duration('PT1S')")
    cypher(settings, f"MATCH (n:{parts} {{thing_id: 3, line: 1}}) SET n.qty = 1")

    found = audit(settings, streams, sinks)
    assert changed_keys(found, "postgres") == {
        "things": {"differing": [[1], [2], [4], [5]]},
        "parts": {"missing": [[1, 2]]},
    }
    assert changed_keys(found, "neo4j") == {
        "things": {"differing": [[1], [3], [4], [5]]},
        "parts": {"differing": [[3, 1]]},
    }
    repaired = audit(settings, streams, sinks, repair=True)
    assert differences(repaired, after_repair=True) == {}
