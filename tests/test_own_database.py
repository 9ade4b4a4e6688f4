"""A user's own database, end to end through the CLI: `chariot init`, then `chariot run`.

Two schemas nobody wrote Chariot for: the small shop of the issue (customers, orders,
order_items with a composite key) and MySQL's Sakila sample database. Nothing but the
project file `init` writes tells Chariot about them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.connections import neo4j_session, postgres_connection
from tests.sakila import ROW_COUNTS, load_sakila
from tests.sync_support import mysql_execute

pytestmark = pytest.mark.integration

SHOP = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL)",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL,"
    " total DECIMAL(10,2) NOT NULL, created_at DATETIME NOT NULL,"
    " FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE TABLE order_items (order_id INT NOT NULL, line_no SMALLINT NOT NULL,"
    " sku VARCHAR(32) NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no),"
    " FOREIGN KEY (order_id) REFERENCES orders (id))",
    "INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob'), (3, 'Cy')",
    "INSERT INTO orders VALUES (10, 1, 99.50, '2024-05-01 10:00:00'),"
    " (11, 2, 120.00, '2024-05-02 11:30:00'), (12, 1, 0.05, '2024-06-30 23:59:59')",
    "INSERT INTO order_items VALUES (10, 1, 'SKU-1', 2), (10, 2, 'SKU-2', 1),"
    " (11, 1, 'SKU-1', 5), (12, 1, 'SKU-3', 1)",
)


def _project_env(tmp_path: Path) -> dict[str, str]:
    return {"CHARIOT_PROJECT": str(tmp_path / "chariot.toml")}


def _postgres_rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with postgres_connection(settings.postgres) as connection:
        connection.execute(f'SET search_path TO "{settings.postgres.schema_name}"')
        return [tuple(row) for row in connection.execute(query).fetchall()]


def _graph_value(settings: Settings, query: str) -> Any:
    with neo4j_session(settings.neo4j) as session:
        return session.run(query).single()[0]


def test_a_shop_database_with_nothing_but_init_and_run(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    mysql_execute(settings.mysql, *SHOP)
    env = _project_env(tmp_path)
    init = cli("init", settings=settings, env=env)
    assert init.exit_code == 0, init.output

    run = cli("run", "--json", settings=settings, env=env)
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["ok"] is True

    assert _postgres_rows(settings, "SELECT id, name FROM customers ORDER BY id") == [
        (1, "Ada"),
        (2, "Bob"),
        (3, "Cy"),
    ]
    orders = _postgres_rows(settings, "SELECT id, customer_id, total, created_at FROM orders")
    assert sorted((o[0], o[1], o[2], o[3].isoformat()) for o in orders) == [
        (10, 1, Decimal("99.50"), "2024-05-01T10:00:00"),
        (11, 2, Decimal("120.00"), "2024-05-02T11:30:00"),
        (12, 1, Decimal("0.05"), "2024-06-30T23:59:59"),
    ]
    assert _postgres_rows(
        settings, "SELECT order_id, line_no, sku, qty FROM order_items ORDER BY 1, 2"
    ) == [(10, 1, "SKU-1", 2), (10, 2, "SKU-2", 1), (11, 1, "SKU-1", 5), (12, 1, "SKU-3", 1)]

    # Every order is linked to its customer, whatever the relationship type init chose.
    assert _graph_value(settings, "MATCH (:Customers)--(:Orders) RETURN count(*)") == 3
    assert _graph_value(settings, "MATCH (c:Customers {id: 1})--(o:Orders) RETURN count(o)") == 2
    assert _graph_value(settings, "MATCH (n:OrderItems) RETURN count(n)") == 4

    audit = cli("audit", settings=settings, env=env)
    assert audit.exit_code == 0, audit.output
    status = cli("status", "--json", settings=settings, env=env)
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert sorted(report["tables"]) == ["customers", "order_items", "orders"]


def test_sakila_init_run_audit_and_repair(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    load_sakila(settings.mysql)
    env = _project_env(tmp_path)
    init = cli("init", settings=settings, env=env)
    assert init.exit_code == 0, init.output

    # keyset: the source changes below are then differences to repair (after a change-capture
    # sync they would be rows in flight, which the next sync carries)
    run = cli("run", "--json", settings=settings, env={**env, "CHARIOT_RUN__MODE": "keyset"})
    assert run.exit_code == 0, run.output

    for table, rows in ROW_COUNTS.items():
        assert _postgres_rows(settings, f"SELECT count(*) FROM {table}") == [(rows,)], table
    assert (
        _graph_value(settings, "MATCH (:Actor)-[r:FILM_ACTOR]->(:Film) RETURN count(r)")
        == (ROW_COUNTS["film_actor"])
    )
    assert _graph_value(settings, "MATCH (n:Rental) RETURN count(n)") == ROW_COUNTS["rental"]

    # The source moves on: updates, deletes and inserts, then the audit finds and repairs them.
    mysql_execute(
        settings.mysql,
        "UPDATE film SET title = CONCAT(title, ' II') WHERE film_id IN (1, 2, 3)",
        "UPDATE payment SET amount = amount + 1 WHERE payment_id = 5",
        "DELETE FROM film_actor WHERE actor_id = 1 AND film_id = 1",
        "DELETE FROM payment WHERE payment_id = 7",
        "INSERT INTO actor (actor_id, first_name, last_name) VALUES (201, 'NEW', 'ACTOR')",
        "INSERT INTO film_actor (actor_id, film_id) VALUES (201, 1)",
    )
    found = cli("audit", settings=settings, env=env)
    assert found.exit_code == 1, found.output
    repaired = cli("audit", "--repair", settings=settings, env=env)
    assert repaired.exit_code == 0, repaired.output
    clean = cli("audit", settings=settings, env=env)
    assert clean.exit_code == 0, clean.output
    assert _postgres_rows(settings, "SELECT title FROM film WHERE film_id = 1") == [
        ("ACADEMY DINOSAUR II",)
    ]
    new_role = "MATCH (:Actor {actor_id: 201})-[r:FILM_ACTOR]->(:Film {film_id: 1}) RETURN count(r)"
    assert _graph_value(settings, new_role) == 1


def test_a_project_that_does_not_fit_the_source_stops_sync_before_any_write(
    cli: Callable[..., Any], sql_settings: Settings, tmp_path: Path
) -> None:
    mysql_execute(sql_settings.mysql, *SHOP)
    env = _project_env(tmp_path)
    assert cli("init", "--no-graph", settings=sql_settings, env=env).exit_code == 0
    project = tmp_path / "chariot.toml"
    text = project.read_text(encoding="utf-8")
    project.write_text(
        text.replace(
            "[tables.customers.columns]",
            '[tables.customers.columns]\nemail = { type = "varchar(200)" }',
        ),
        encoding="utf-8",
    )

    done = cli("sync", "--sink", "postgres", settings=sql_settings, env=env)
    assert done.exit_code == 2, done.output
    assert (
        "tables.customers.columns.email: the source table customers has no column 'email'"
        in done.output
    )
    assert _postgres_rows(
        sql_settings,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    ) == [(0,)]


def test_binary_and_datetime_keys_resume_from_their_checkpoints(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    """A VARBINARY key (UUIDs stored as bytes are common) and a DATETIME(6) key: the next
    sync starts right after the stored checkpoint, and every output shows the key."""
    mysql_execute(
        settings.mysql,
        "CREATE TABLE devices (id VARBINARY(16) PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "CREATE TABLE readings (at DATETIME(6) PRIMARY KEY, value INT NOT NULL)",
        "INSERT INTO devices VALUES (0x00ff, 'a'), (0x0100, 'b')",
        "INSERT INTO readings VALUES ('2024-01-01 00:00:00.5', 1), ('2024-01-02 00:00:00', 2)",
    )
    env = {**_project_env(tmp_path), "CHARIOT_RUN__MODE": "keyset"}
    assert cli("init", settings=settings, env=env).exit_code == 0

    first = cli("sync", "--json", settings=settings, env=env)
    assert first.exit_code == 0, first.output
    marks = {
        t["table"]: [s["checkpoint_after"] for s in t["sinks"]]
        for t in json.loads(first.stdout)["tables"]
    }
    assert marks == {
        "devices": [[{"hex": "0100"}]] * 2,
        "readings": [["2024-01-02 00:00:00"]] * 2,
    }
    mysql_execute(
        settings.mysql,
        "INSERT INTO devices VALUES (0x0101, 'c'), (0x00fe, 'below the mark')",
        "INSERT INTO readings VALUES ('2024-01-02 00:00:00.000001', 3)",
    )
    second = cli("sync", settings=settings, env=env)
    assert second.exit_code == 0, second.output
    assert _postgres_rows(settings, "SELECT id, name FROM devices ORDER BY id") == [
        (b"\x00\xff", "a"),
        (b"\x01\x00", "b"),
        (b"\x01\x01", "c"),
    ]
    assert _postgres_rows(settings, "SELECT count(*) FROM readings") == [(3,)]
    assert _graph_value(settings, "MATCH (n:Readings) RETURN count(n)") == 3
    # The row inserted below the mark is what a key-based sync cannot see: the audit names it.
    audit = cli("audit", "--json", settings=settings, env=env)
    assert audit.exit_code == 1, audit.output
    status = cli("status", settings=settings, env=env)
    assert status.exit_code == 0, status.output
    assert '{"hex": "0101"}' in status.stdout
